// sd_factor_row_ref: plain multiplier reference for the factorized dataflow's per-row update.
//
// Hand-written for formal equivalence checks (Yosys miter, ABC) against the generated
// shift-add `sd_factor_row`. It is deliberately the most obvious formulation: each term is a
// real multiplication of the sign-extended activation by the Ce element's value
// (present ? (negative ? -1 : 1) * 2**code : 0), added to the accumulator.
//
// Ports (docs/numerics.md section 4b):
//   ce_i  : three Ce elements k = 0..2, element k at ce_i[k*(2+ExpBits) +: 2+ExpBits];
//           bit 0 = present, bit 1 = negative, bits [2 +: ExpBits] = exponent code.
//   x_i   : the three activations x[j] at x_i[j*ActBits +: ActBits], signed.
//   acc_i : the nine block accumulators acc[k][j] at acc_i[(k*3+j)*AccBits +: AccBits], signed.
//   acc_o : acc[k][j] + Ce[k] * x[j], same layout, computed modulo 2**AccBits.
//
// All arithmetic is done at AccBits bits: the product and the sum are taken modulo 2**AccBits,
// which is what an AccBits-bit register holds (and the exact value whenever it fits).
`default_nettype none

module sd_factor_row_ref #(
    parameter ActBits = 8,
    parameter ExpBits = 3,
    parameter AccBits = 24
) (
    input  wire [3*(2+ExpBits)-1:0] ce_i,
    input  wire [3*ActBits-1:0]     x_i,
    input  wire [9*AccBits-1:0]     acc_i,
    output wire [9*AccBits-1:0]     acc_o
);
    localparam integer CW = 2 + ExpBits;  // one Ce element

    // The Ce element's value times x, at AccBits bits.
    function automatic signed [AccBits-1:0] term;
        input signed [ActBits-1:0] x;
        input present;
        input negative;
        input [ExpBits-1:0] code;
        reg signed [AccBits-1:0] x_ext;
        reg signed [AccBits-1:0] ce;
        begin
            x_ext = {{(AccBits - ActBits){x[ActBits-1]}}, x};  // sign extension
            if (!present) ce = {AccBits{1'b0}};
            else if (negative) ce = -({{(AccBits - 1){1'b0}}, 1'b1} << code);
            else ce = {{(AccBits - 1){1'b0}}, 1'b1} << code;
            term = x_ext * ce;                                   // the plain multiplier
        end
    endfunction

    genvar k, j;
    generate
        for (k = 0; k < 3; k = k + 1) begin : g_row
            for (j = 0; j < 3; j = j + 1) begin : g_col
                assign acc_o[(k*3+j)*AccBits +: AccBits] =
                    acc_i[(k*3+j)*AccBits +: AccBits]
                    + term(x_i[j*ActBits +: ActBits], ce_i[k*CW], ce_i[k*CW+1],
                           ce_i[k*CW+2 +: ExpBits]);
            end
        end
    endgenerate
endmodule

`default_nettype wire
