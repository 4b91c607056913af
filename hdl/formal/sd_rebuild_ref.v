// sd_rebuild_ref: plain multiplier reference for the SmartDeal weight rebuild.
//
// Hand-written for formal equivalence checks (Yosys `miter -equiv` + `sat -tempinduct`)
// against the generated shift-add rebuild engine `sd_rebuild`. It is deliberately the
// most obvious formulation, not an efficient one: each term is a real multiplication
// of the sign-extended basis element by (1 << code), negated and gated separately.
//
// Ports (see docs/architecture.md section 2, number formats):
//   b_i  : the 3x3 basis B, element (k, j) (k = basis row, j = column) at
//          b_i[(k*3+j)*BasisBits +: BasisBits], signed two's complement.
//   ce_i : three Ce elements k = 0..2, element k at ce_i[k*(2+ExpBits) +: 2+ExpBits];
//          within an element bit 0 = present, bit 1 = negative,
//          bits [2 +: ExpBits] = exponent code.
//   w_o  : the three rebuilt weights j = 0..2 at w_o[j*RB +: RB], signed, where
//          RB = BasisBits + (2**ExpBits - 1) + 2 and
//          w_j = sum_k (present_k ? (negative_k ? -1 : 1) * B[k][j] * 2**code_k : 0).
//
// RB is exact: |B * 2**code| <= 2**(BasisBits-1) * 2**(2**ExpBits-1), so each term fits
// in BasisBits + 2**ExpBits signed bits (the +1 covers negating the most negative B) and
// the sum of three terms in one more bit. All arithmetic below is done at RB bits, where
// it cannot overflow, so truncating products and sums to RB bits is exact.
`default_nettype none

module sd_rebuild_ref #(
    parameter BasisBits = 8,
    parameter ExpBits = 3
) (
    input  wire [9*BasisBits-1:0]                          b_i,
    input  wire [3*(2+ExpBits)-1:0]                        ce_i,
    output wire [3*(BasisBits + (2**ExpBits - 1) + 2)-1:0] w_o
);
    localparam integer RB = BasisBits + (2**ExpBits - 1) + 2;  // rebuilt weight width
    localparam integer CW = 2 + ExpBits;                        // one Ce element

    // One term: present ? (negative ? -1 : 1) * b * 2**code : 0, at RB bits.
    function automatic signed [RB-1:0] term;
        input signed [BasisBits-1:0] b;
        input present;
        input negative;
        input [ExpBits-1:0] code;
        reg signed [RB-1:0] b_ext;
        reg signed [RB-1:0] pow2;
        reg signed [RB-1:0] prod;
        begin
            b_ext = {{(RB - BasisBits){b[BasisBits-1]}}, b};  // sign extension
            pow2 = {{(RB - 1) {1'b0}}, 1'b1} << code;          // 2**code (positive: code < RB-1)
            prod = b_ext * pow2;                               // the plain multiplier
            if (!present) term = {RB{1'b0}};
            else if (negative) term = -prod;
            else term = prod;
        end
    endfunction

    genvar j;
    generate
        for (j = 0; j < 3; j = j + 1) begin : g_col
            wire signed [RB-1:0] t0 = term(b_i[(0*3+j)*BasisBits +: BasisBits],
                                           ce_i[0*CW], ce_i[0*CW+1], ce_i[0*CW+2 +: ExpBits]);
            wire signed [RB-1:0] t1 = term(b_i[(1*3+j)*BasisBits +: BasisBits],
                                           ce_i[1*CW], ce_i[1*CW+1], ce_i[1*CW+2 +: ExpBits]);
            wire signed [RB-1:0] t2 = term(b_i[(2*3+j)*BasisBits +: BasisBits],
                                           ce_i[2*CW], ce_i[2*CW+1], ce_i[2*CW+2 +: ExpBits]);
            assign w_o[j*RB +: RB] = t0 + t1 + t2;
        end
    endgenerate
endmodule

`default_nettype wire
