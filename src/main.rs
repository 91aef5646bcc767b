fn main() -> std::process::ExitCode {
    auditrail::cli::main()
}
