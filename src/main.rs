fn main() {
    std::process::exit(oversell::command_line());
}
