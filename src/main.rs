fn main() -> std::process::ExitCode {
    wa_gateway::cli::main()
}
