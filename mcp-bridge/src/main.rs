fn main() {
    eprintln!("codex-jobs-mcp is not built yet");
    std::process::exit(1);
}
