use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = arauto::cli::Cli::parse();
    let settings = match arauto::config::Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    arauto::telemetry::init(&settings.log);
    match arauto::cli::run(cli, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "arauto stopped");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
