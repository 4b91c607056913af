//! FPGA and formal tool drivers.
