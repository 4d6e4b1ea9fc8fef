fn main() {
    std::process::exit(oversell::cli::main());
}
