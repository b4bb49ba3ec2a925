//! The `ehrfusion` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    ehrfusion::cli::main(std::env::args_os(), ehrfusion::cli::PythonFrontEnd::Embedded)
}
