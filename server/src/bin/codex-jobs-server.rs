use clap::Parser;
use codex_jobs_server::{
    config::{ServerArgs, ServerCommand, TokenCommand},
    service::auth::{Scope, new_token as make_token},
};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // The server's blocking work (a store query, a pread of a log) takes
    // microseconds: a few blocking threads that stay busy under load answer a burst
    // of clients faster than tokio's default of up to 512, one woken per request.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads((2 * cores).max(4))
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve()),
        Err(err) => {
            eprintln!("codex-jobs-server: cannot start the async runtime: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = ServerArgs::parse();
    if let Some(ServerCommand::Token(TokenCommand::New { name, scope })) = &args.command {
        return new_token(name, scope);
    }
    raise_open_file_limit();
    let server = codex_jobs_server::run(args, codex_jobs_server::stop_signal());
    match server.await {
        Ok(running) => {
            running.stopped().await;
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!("{err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `token new`: prints a new token's secret and its line for the tokens file.
fn new_token(name: &str, scope: &str) -> std::process::ExitCode {
    let scope = Scope::from_name(scope).expect("clap checked the scope");
    match make_token(name, scope) {
        Ok((secret, line)) => {
            println!("token: {secret}");
            println!("line:  {line}");
            eprintln!(
                "Give the token to its client (codex-jobs --token, or CODEX_JOBS_TOKEN); it is not \
                 shown again. Add the line to the server's --tokens-file: the server reads it \
                 again on its own."
            );
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("codex-jobs-server: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Lifts the soft limit on open files to the hard one: each running job holds a few
/// descriptors (its runner's pidfd, an inotify watch), and the usual soft limit of
/// 1024 would cap the server well below the jobs a host can run.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
