//! The swiftdup binary: parse, run one command, exit with its code. Everything else lives
//! in the library.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    swiftdup::local::platform::exit(swiftdup::app::main(args));
}
