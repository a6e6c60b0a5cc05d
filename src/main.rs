//! The command line. Every command reads the same configuration as the
//! server; the work itself is in the library.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use entity::{Role, UserStatus};
use reportfiles::{
    access::{AccessChange, Operator},
    auth::Tokens,
    config::Config,
    server,
    storage::{Storage, SweepOptions},
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

// Every GraphQL request builds and drops many small values; glibc's malloc
// was an eighth of the server's CPU under load (perf), mimalloc is cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONFIGURATION: &str = "\
Configuration comes from environment variables, also read from a .env file
in this folder or a parent (.env.example documents each). Every command
reads the same configuration as the server. With none set, the server runs
on SQLite and a local folder under DATA_DIR (default: data/ beside .env, or
./data). The ones that matter most:
  DATABASE_URL   sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DB
  STORAGE_URL    file://DIR or s3://BUCKET[/PREFIX] (with the AWS_* variables)
  BIND_ADDR      where the server listens (127.0.0.1:8080)
  APP_ENV        development (default) or production";

#[derive(Parser)]
#[command(
    name = "reportfiles",
    about = "The server of the TANF data-reporting portal: GraphQL API, streamed uploads and downloads",
    version,
    after_help = CONFIGURATION
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default): migrates the database, then listens on
    /// BIND_ADDR until SIGTERM or Ctrl-C.
    #[command(after_help = CONFIGURATION)]
    Serve,
    /// Apply database migrations and load the STT reference data.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print an HS256 token for local development, signed with
    /// JWT_HS256_SECRET or, when that is unset, the development secret in
    /// DATA_DIR/dev-jwt-secret (the file the server reads too; made on first
    /// use). Send it as `Authorization: Bearer <token>`.
    Token {
        /// The subject (`sub`) the token is for: who the user is.
        #[arg(long)]
        sub: String,
        /// The `email` claim, recorded on a user's first request.
        #[arg(long)]
        email: Option<String>,
        /// The `name` claim, recorded on a user's first request.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 8 * 3600)]
        ttl: u64,
    },
    /// STT reference data.
    #[command(subcommand)]
    Stt(SttCommand),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Object storage maintenance.
    #[command(subcommand)]
    Storage(StorageCommand),
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Reconcile storage with the database: delete objects no row points at
    /// (every version), abort incomplete multipart uploads, and report rows
    /// whose object is missing (rows are never deleted).
    Sweep {
        /// Print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Touch only what is older than this (30s, 15m, 2h, 1d): younger
        /// objects and uploads may belong to uploads still running.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        older_than: Duration,
    },
}

#[derive(Subcommand)]
enum SttCommand {
    /// List every STT: id (for --stt-id), type, code, name and region.
    List,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (or update an existing one) and set their access.
    Create {
        /// The subject (`sub` claim) of the user's tokens.
        #[arg(long)]
        subject: String,
        /// Their email address (only for a new user).
        #[arg(long)]
        email: Option<String>,
        /// Their display name (only for a new user).
        #[arg(long)]
        name: Option<String>,
        /// DATA_ANALYST, REGIONAL_STAFF, OFA_ADMIN or SYSTEM_ADMIN.
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// The STT of a DATA_ANALYST (`reportfiles stt list` shows the ids).
        #[arg(long)]
        stt_id: Option<i32>,
        /// The regions of REGIONAL_STAFF (repeatable).
        #[arg(long = "region-id")]
        region_ids: Vec<i32>,
        /// Approve the user (needs --role); otherwise they stay PENDING.
        #[arg(long)]
        approve: bool,
    },
    /// List users.
    List,
}

fn parse_role(s: &str) -> Result<Role, String> {
    [
        Role::DataAnalyst,
        Role::RegionalStaff,
        Role::OfaAdmin,
        Role::SystemAdmin,
    ]
    .into_iter()
    .find(|r| r.as_str().eq_ignore_ascii_case(s))
    .ok_or_else(|| format!("`{s}` is not DATA_ANALYST, REGIONAL_STAFF, OFA_ADMIN or SYSTEM_ADMIN"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", reportfiles::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reportfiles: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.server.log_json);
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reportfiles: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt::layer().json()).init();
    } else {
        // Colours only for a person at a terminal, not in a file or a pipe.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        registry.with(fmt::layer().with_ansi(ansi)).init();
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A connection for a command, with the schema brought up to date.
async fn operator(config: &Config) -> Result<Operator, Error> {
    Ok(Operator::connect(&config.database).await?)
}

async fn run(command: Command, config: Config) -> Result<(), Error> {
    match command {
        Command::Serve => Ok(server::run(config).await?),
        Command::Migrate => {
            operator(&config).await?;
            println!("migrations applied, reference data loaded");
            Ok(())
        }
        Command::Token {
            sub,
            email,
            name,
            ttl,
        } => {
            let token = Tokens::load(&config.tokens)?
                .mint_hs256(&sub, email.as_deref(), name.as_deref(), ttl)
                .ok_or("HS256 is not enabled (JWT_ALGORITHMS) or has no secret")?;
            println!("{token}");
            Ok(())
        }
        Command::User(UserCommand::Create {
            subject,
            email,
            name,
            role,
            stt_id,
            region_ids,
            approve,
        }) => {
            let change = AccessChange {
                role,
                stt_id,
                region_ids,
                status: if approve {
                    UserStatus::Approved
                } else {
                    UserStatus::Pending
                },
            };
            let user = operator(&config)
                .await?
                .upsert_user(&subject, email.as_deref(), name.as_deref(), change)
                .await?;
            println!(
                "user {} ({}): {} {}",
                user.id,
                user.subject,
                user.status.as_str(),
                user.role.map_or("no role", |r| r.as_str())
            );
            Ok(())
        }
        Command::Stt(SttCommand::List) => {
            for s in operator(&config).await?.stts().await? {
                println!(
                    "{}\t{}\t{}\t{}\tregion {}",
                    s.id,
                    s.stt_type.as_str(),
                    s.stt_code,
                    s.name,
                    s.region_id
                );
            }
            Ok(())
        }
        Command::User(UserCommand::List) => {
            for u in operator(&config).await?.users().await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    u.id,
                    u.subject,
                    u.status.as_str(),
                    u.role.map_or("-", |r| r.as_str()),
                    u.email.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        Command::Storage(StorageCommand::Sweep {
            dry_run,
            older_than,
        }) => {
            let storage = Storage::new(&config.storage, &config.uploads)?;
            // Rows first: an object written after this is then too young
            // to touch, never mistaken for one a row lacks.
            let recorded = operator(&config).await?.recorded_objects().await?;
            let options = SweepOptions {
                dry_run,
                older_than,
            };
            let report = storage.sweep(&recorded, &options).await?;
            print!("{report}");
            if report.succeeded() {
                Ok(())
            } else {
                Err("some objects or uploads could not be removed (see above)".into())
            }
        }
        Command::Schema => unreachable!("handled before configuration is read"),
    }
}
