//! The `etl` binary: parses the command line and hands over to `etl::cli`.

fn main() {
    std::process::exit(etl::cli::main());
}
