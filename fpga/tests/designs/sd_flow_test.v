`default_nettype none
// Flow test design for the place-and-route tests (fpga/tests/flow.rs): a UART echo (8N1) plus an
// LED blinker. It is not part of the accelerator; it exists so the board flows can be tested on
// something small that still has real IO, flip-flops, carry chains and a clock, and it uses
// exactly the board-top port names the pin files constrain (clk_i, uart_rx_i, uart_tx_o, led_o).
//
// led_o[0] blinks (about 0.7 Hz at 12 MHz, 1.5 Hz at 25 MHz); led_o[1..] show the low bits of
// the last received byte. The iCEBreaker's red and green LEDs are active low: this test design
// does not care.
module sd_flow_test #(
    parameter integer ClkHz    = 12000000,
    parameter integer Baud     = 115200,
    // 7 on the iCEBreaker (red, green, PMOD2 LED1..5), 8 on the ULX3S; at most 9.
    parameter integer LedCount = 2
) (
    input  wire                clk_i,
    input  wire                uart_rx_i,
    output wire                uart_tx_o,
    output wire [LedCount-1:0] led_o
);
    // Clocks per UART bit, minus one (the counters count down to zero), and half of that for the
    // first sample in the middle of the start bit. 32-bit localparams with part-selects keep
    // the lint (-Wall) quiet about width changes.
    localparam [31:0] DivM1  = ClkHz / Baud - 1;
    localparam [31:0] HalfM1 = ClkHz / Baud / 2 - 1;

    // Two-flop synchronizer: uart_rx_i is asynchronous to clk_i. Idle line is high.
    reg [1:0] rx_sync = 2'b11;
    always @(posedge clk_i) rx_sync <= {rx_sync[0], uart_rx_i};
    wire rx = rx_sync[1];

    // Receiver. rx_bit: 0 = start bit, 1..8 = data bits (LSB first), 9 = stop bit.
    reg        rx_busy  = 1'b0;
    reg [15:0] rx_cnt   = 16'd0;
    reg [3:0]  rx_bit   = 4'd0;
    reg [7:0]  rx_shift = 8'd0;
    reg        rx_valid = 1'b0;
    always @(posedge clk_i) begin
        rx_valid <= 1'b0;
        if (!rx_busy) begin
            if (!rx) begin
                rx_busy <= 1'b1;
                rx_cnt  <= HalfM1[15:0];
                rx_bit  <= 4'd0;
            end
        end else if (rx_cnt != 16'd0) begin
            rx_cnt <= rx_cnt - 16'd1;
        end else begin
            rx_cnt <= DivM1[15:0];
            if (rx_bit == 4'd0) begin
                // Middle of the start bit: a high line here was a glitch.
                if (rx) rx_busy <= 1'b0;
                rx_bit <= 4'd1;
            end else if (rx_bit == 4'd9) begin
                // Middle of the stop bit: accept the byte only on a proper stop bit.
                rx_busy  <= 1'b0;
                rx_valid <= rx;
            end else begin
                rx_shift <= {rx, rx_shift[7:1]};
                rx_bit   <= rx_bit + 4'd1;
            end
        end
    end

    // Transmitter: echoes each received byte. tx_shift[0] drives the line; ones shift in, so
    // the line idles high. A byte arriving while one is still being sent is dropped.
    reg [9:0]  tx_shift = 10'h3FF;
    reg [3:0]  tx_left  = 4'd0;
    reg [15:0] tx_cnt   = 16'd0;
    always @(posedge clk_i) begin
        if (tx_left == 4'd0) begin
            if (rx_valid) begin
                tx_shift <= {1'b1, rx_shift, 1'b0};
                tx_left  <= 4'd10;
                tx_cnt   <= DivM1[15:0];
            end
        end else if (tx_cnt != 16'd0) begin
            tx_cnt <= tx_cnt - 16'd1;
        end else begin
            tx_cnt   <= DivM1[15:0];
            tx_shift <= {1'b1, tx_shift[9:1]};
            tx_left  <= tx_left - 4'd1;
        end
    end
    assign uart_tx_o = tx_shift[0];

    // LEDs.
    reg [23:0] blink = 24'd0;
    reg [7:0]  last  = 8'd0;
    always @(posedge clk_i) begin
        blink <= blink + 24'd1;
        if (rx_valid) last <= rx_shift;
    end
    /* verilator lint_off UNUSEDSIGNAL */
    wire [8:0] led_all = {last, blink[23]};  // the bits above LedCount are unused
    /* verilator lint_on UNUSEDSIGNAL */
    assign led_o = led_all[LedCount-1:0];
endmodule
