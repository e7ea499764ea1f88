//! The PL011 UART of QEMU's `virt` machine, output only: QEMU needs no setup to print.

use core::fmt;

/// The UART's data register.
const UART_DR: usize = 0x0900_0000;

/// Writes to the UART.
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            // SAFETY: UART_DR is the PL011's data register on QEMU virt, a device register
            // that takes one byte per write; a volatile write is how a device is written.
            unsafe { core::ptr::write_volatile(UART_DR as *mut u32, u32::from(byte)) };
        }
        Ok(())
    }
}

/// Prints to the UART.
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::uart::Uart, $($arg)*);
    }};
}
pub(crate) use println;
