//! Past one machine: the plans `run` makes, executed on an Apache DataFusion Ballista
//! cluster instead of the local session. The definition is compiled exactly as for a
//! local run; only the session differs, one whose query planner ships each plan (as
//! DataFusion protobuf) to a scheduler that splits it into stages for its executors.
//! `codec` teaches both ends our functions and the tables we hold in memory; the
//! scheduler and executor here are Ballista's own with that codec built in.

pub mod codec;
pub mod stages;

use std::net::SocketAddr;
use std::sync::Arc;

use ballista::extension::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;

use crate::error::{ErrorKind, Result, ResultExt};
use crate::{bail, err};

pub use codec::{LogicalCodec, PhysicalCodec};

/// The largest plan or result message a cluster's processes exchange. Plans carry
/// the tables held in memory (a stage's patient-level values), so this is far above
/// gRPC's usual 4-16 MiB.
pub const MAX_MESSAGE_BYTES: u32 = 1 << 30;

/// A scheduler's address from `df://HOST:PORT` (the port defaults to 50050).
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let Some(rest) = url.strip_prefix("df://") else {
        bail!("--cluster {url}: expected df://HOST:PORT, the address of a scheduler (`ehrfusion cluster scheduler`)");
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| err!("--cluster {url}: the port must be a number from 1 to 65535"))?),
        None => (rest, 50050),
    };
    if host.is_empty() {
        bail!("--cluster {url}: no host named");
    }
    Ok((host.to_string(), port))
}

/// The settings of a session on a cluster: a local session's, without dynamic
/// filters. A Ballista 55 scheduler chooses join sides again when a stage's inputs
/// are known, and a join whose dynamic filter was already built cannot be swapped:
/// the task's status update then fails and the job never ends (seen with stage
/// results read from files). The umbrella setting is the one to turn off: the
/// scheduler applies settings in order, and it comes after (and overrides) the
/// join-only one.
fn cluster_config(partitions: usize) -> Result<datafusion::prelude::SessionConfig> {
    let mut config = crate::run::session_config(partitions);
    config.options_mut().set("datafusion.optimizer.enable_dynamic_filter_pushdown", "false")?;
    Ok(config)
}

/// A session whose plans run on the scheduler at `url`; `partitions` is how many
/// partitions each stage is split into (at least the executors' task slots), and
/// `run` where stage results go and how many blocks run at once.
pub async fn session(url: &str, partitions: usize, run: stages::ClusterRun) -> Result<SessionContext> {
    let (host, port) = parse_url(url)?;
    // Ballista connects only when the first plan runs: check now, to fail with one line
    // before any work is done.
    let endpoint = format!("http://{host}:{port}");
    SchedulerGrpcClient::connect(endpoint.clone()).await.map_err(|e| err!("--cluster {url}: cannot reach a scheduler at {endpoint} ({e})"))?;
    let config = cluster_config(partitions)?
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES as usize)
        .with_ballista_job_name("ehrfusion")
        .with_extension(Arc::new(run));
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await.map_err(|e| err!("--cluster {url}: {e}"))
}

/// The stages a plan becomes on a cluster, as a scheduler would split it (shown by
/// `explain --cluster`; nothing is sent anywhere).
pub async fn explain(plan: &datafusion::logical_expr::LogicalPlan, partitions: usize) -> Result<String> {
    let config = cluster_config(partitions)?.upgrade_for_ballista();
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    let physical = state.create_physical_plan(plan).await?;
    let mut planner = DefaultDistributedPlanner::new();
    let job = ballista_core::ids::JobId::new("explain");
    let stages = planner.plan_query_stages(&job, physical, state.config_options()).map_err(|e| err!("{e}"))?;
    let mut out = String::new();
    for stage in stages {
        out.push_str(&format!("-- cluster stage {} --\n{}", stage.stage_id(), displayable(stage.as_ref()).indent(false)));
    }
    Ok(out)
}

/// How long an executor may go unheard before the scheduler gives its tasks to
/// others, and how often executors report (Ballista's defaults, 180 s and 60 s,
/// leave a job waiting minutes for a dead executor).
const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;
const HEARTBEAT_SECONDS: u64 = 5;

/// Log Ballista's events to standard error, filtered by RUST_LOG (default: warnings,
/// and each job's submission and end).
fn start_logging() {
    let filter = "warn,ballista_scheduler::scheduler_server::query_stage_scheduler=info";
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter)).try_init();
}

/// Settings of a scheduler process.
pub struct SchedulerOptions {
    pub bind: String,
    pub port: u16,
}

/// Run a scheduler until the process is stopped.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<()> {
    let address: SocketAddr = format!("{}:{}", options.bind, options.port).parse().map_err(|e| err!("--bind {} --port {}: {e}", options.bind, options.port))?;
    let mut config = SchedulerConfig::default()
        .with_hostname(options.bind.clone())
        .with_port(options.port)
        .with_grpc_server_max_decoding_message_size(MAX_MESSAGE_BYTES)
        .with_grpc_server_max_encoding_message_size(MAX_MESSAGE_BYTES)
        .with_grpc_client_max_message_size(MAX_MESSAGE_BYTES);
    config.bind_host = options.bind.clone();
    config.executor_timeout_seconds = EXECUTOR_TIMEOUT_SECONDS;
    config.expire_dead_executor_interval_seconds = HEARTBEAT_SECONDS;
    config.no_executors_grace_period_seconds = EXECUTOR_TIMEOUT_SECONDS;
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    start_logging();
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|e| err!("scheduler: {e}"))?;
    eprintln!("ehrfusion scheduler listening on {address} (df://{address})");
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config)).await.map_err(|e| err!("scheduler: {e}"))?;
    Ok(())
}

/// Settings of an executor process.
pub struct ExecutorOptions {
    /// The scheduler, as `df://HOST:PORT` or `HOST:PORT`.
    pub scheduler: String,
    pub bind: String,
    /// The address others reach this executor at (default: `bind`).
    pub external_host: Option<String>,
    /// The port other executors and clients fetch results from (Arrow Flight).
    pub port: u16,
    /// The port the scheduler sends tasks to.
    pub grpc_port: u16,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Where stage results (shuffle files) are written.
    pub work_dir: Option<String>,
}

/// The address an executor tells the scheduler to reach it at: --external-host, or
/// the address it listens on, unless that is a wildcard no other machine can use.
fn advertised_host(bind: &str, external: Option<&str>) -> Result<String> {
    match external {
        Some("") => bail!("--external-host: no host named"),
        Some(host) => Ok(host.to_string()),
        None if matches!(bind, "0.0.0.0" | "::" | "[::]") => {
            bail!("--bind {bind} listens on every interface, but others cannot reach {bind}: give --external-host, this machine's name or address as the scheduler and other executors see it")
        }
        None => Ok(bind.to_string()),
    }
}

/// Run an executor until the process is stopped.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let url = if options.scheduler.contains("://") { options.scheduler.clone() } else { format!("df://{}", options.scheduler) };
    let (host, port) = parse_url(&url)?;
    if options.concurrency == 0 {
        return Err(err!("--concurrency must be at least 1").or_kind(ErrorKind::Usage));
    }
    let external_host = advertised_host(&options.bind, options.external_host.as_deref()).or_kind(ErrorKind::Usage)?;
    let mut config = ExecutorProcessConfig {
        bind_host: options.bind.clone(),
        external_host: Some(external_host.clone()),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.concurrency,
        work_dir: options.work_dir,
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        ..Default::default()
    };
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    start_logging();
    eprintln!("ehrfusion executor on {}:{}, reached at {external_host} ({} task slots), scheduler {url}", options.bind, options.port, options.concurrency);
    start_executor_process(Arc::new(config)).await.map_err(|e| err!("executor: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls() {
        assert_eq!(parse_url("df://localhost:50050").unwrap(), ("localhost".to_string(), 50050));
        assert_eq!(parse_url("df://10.0.0.7").unwrap(), ("10.0.0.7".to_string(), 50050));
        assert_eq!(parse_url("df://h:7/").unwrap(), ("h".to_string(), 7));
        for bad in ["localhost:50050", "df://", "df://h:port", "df://h:70000", "http://h:1"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn executors_advertise_a_reachable_address() {
        assert_eq!(advertised_host("127.0.0.1", None).unwrap(), "127.0.0.1");
        assert_eq!(advertised_host("0.0.0.0", Some("node-3")).unwrap(), "node-3");
        assert_eq!(advertised_host("10.0.0.5", Some("node-3")).unwrap(), "node-3");
        for wildcard in ["0.0.0.0", "::", "[::]"] {
            let e = advertised_host(wildcard, None).unwrap_err().to_string();
            assert!(e.contains("--external-host"), "{e}");
        }
        assert!(advertised_host("0.0.0.0", Some("")).is_err());
    }
}
