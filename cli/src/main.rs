use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use greenlight_cli::event::{RevisionArgs, Revisions};
use greenlight_cli::invoke::Invoker;
use greenlight_cli::rehearse::{Options, Rehearsal, ReturnedDetails};
use greenlight_cli::report::Reporter;
use greenlight_cli::service;

/// Greenlight's command-line tool.
#[derive(Parser)]
#[command(name = "greenlight", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play an ECS blue/green deployment through its lifecycle stages, invoking each
    /// stage's hook functions with the events ECS would send.
    ///
    /// Exit status: 0 when the deployment completes, 1 when it rolls back (or fails),
    /// 2 on a usage or setup error.
    Rehearse(RehearseArgs),
    /// Approve (or reject) a waiting approval, as your IAM identity: the endpoint learns who
    /// you are from STS, through a GetCallerIdentity request you presign, and checks you
    /// against the approval's approvers.
    ///
    /// Exit status: 0 when the decision is recorded, 1 when it is not (refused, already
    /// decided, expired, unknown), 2 on a usage or setup error.
    Approve(ApproveArgs),
}

#[derive(Args)]
struct ApproveArgs {
    /// The approval id (32 hex digits), as the approval request shows it.
    id: String,
    /// The approval endpoint's URL (the stack's ApprovalsUrl output).
    #[arg(long, value_name = "URL")]
    endpoint: String,
    /// Reject instead of approving: the deployment rolls back.
    #[arg(long)]
    reject: bool,
    /// A comment recorded with the decision.
    #[arg(long, value_name = "TEXT", default_value = "")]
    comment: String,
    /// The endpoint's region [default: from a function URL, else the AWS configuration].
    #[arg(long)]
    region: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DetailsArg {
    /// The configured hookDetails with the returned keys laid over them.
    Merge,
    /// The returned hookDetails alone.
    Replace,
}

#[derive(Args)]
struct RehearseArgs {
    /// The service file: JSON as in a CreateService or UpdateService request
    /// (serviceName, cluster, deploymentConfiguration with strategy and lifecycleHooks).
    service_file: PathBuf,

    /// The Lambda Invoke API serving the functions (`cargo lambda watch`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9000")]
    endpoint: String,

    /// Invoke the deployed functions through AWS Lambda (default credential chain).
    #[arg(long, conflicts_with = "endpoint")]
    aws: bool,

    /// Region for --aws and for the generated ARNs [default: the hooks' region].
    #[arg(long)]
    region: Option<String>,

    /// Account id in the generated ARNs [default: the hooks' account].
    #[arg(long)]
    account: Option<String>,

    /// Serve a hook under another local name, e.g. prod-gate=before-allow-traffic
    /// (repeatable; the left side is the function name or the whole hookTargetArn).
    #[arg(long = "function", value_name = "NAME=LOCAL", value_parser = mapping)]
    functions: Vec<(String, String)>,

    /// The service ARN in the events [default: built from the service file].
    #[arg(long, value_name = "ARN")]
    service_arn: Option<String>,

    /// The service deployment ARN, sent as resourceArn [default: a new one].
    #[arg(long, value_name = "ARN")]
    service_deployment_arn: Option<String>,

    /// The new (green) service revision [default: a new one].
    #[arg(long, value_name = "ARN")]
    target_revision_arn: Option<String>,

    /// The previous (blue) service revision [default: a new one].
    #[arg(long, value_name = "ARN", conflicts_with = "first_deployment")]
    source_revision_arn: Option<String>,

    /// The service's first deployment: no previous revision, so the weights name only the
    /// new one, RECONCILE_SERVICE does not run, and a failure has nothing to roll back to.
    #[arg(long)]
    first_deployment: bool,

    /// Scale callBackDelay and bake waits by this factor (0.05 makes a 30 s delay 1.5 s;
    /// 0 does not wait).
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = scale)]
    time_scale: f64,

    /// Invocations of one hook execution after which a hook still IN_PROGRESS counts as
    /// timed out (its timeoutConfiguration.action then applies, ROLLBACK by default).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    max_invocations: u32,

    /// How long one invocation may take before it counts as failed.
    #[arg(long, value_name = "DURATION", default_value = "15m 30s", value_parser = humantime::parse_duration)]
    invoke_timeout: Duration,

    /// What an IN_PROGRESS hook's next invocation gets as hookDetails.
    #[arg(long, value_enum, default_value_t = DetailsArg::Merge)]
    returned_details: DetailsArg,

    /// Write the timeline and the summary as JSON, one object per line.
    #[arg(long)]
    json: bool,
}

fn mapping(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(format!("expected NAME=LOCAL, got {s:?}")),
    }
}

fn scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err(format!("expected a number of at least 0, got {s:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let code = match cli.command {
        Command::Rehearse(args) => runtime.block_on(rehearse(args)),
        Command::Approve(args) => runtime.block_on(approve(args)),
    };
    ExitCode::from(code)
}

async fn approve(args: ApproveArgs) -> u8 {
    let request = greenlight_cli::approve::Request {
        id: args.id,
        endpoint: args.endpoint,
        action: if args.reject {
            greenlight::approval::Action::Reject
        } else {
            greenlight::approval::Action::Approve
        },
        comment: args.comment,
        region: args.region,
    };
    let (code, message) = greenlight_cli::approve::run(&request).await;
    if code == 0 {
        println!("{message}");
    } else {
        eprintln!("greenlight approve: {message}");
    }
    code
}

async fn rehearse(args: RehearseArgs) -> u8 {
    let reporter = Reporter::stdout(args.json);
    let setup_error = |message: String| {
        eprintln!("greenlight rehearse: {message}");
        reporter.error(&message);
        2
    };
    let path = args.service_file.display().to_string();
    let text = match std::fs::read_to_string(&args.service_file) {
        Ok(t) => t,
        Err(e) => return setup_error(format!("cannot read {path}: {e}")),
    };
    let service = match service::parse(&text) {
        Ok(s) => s,
        Err(e) => return setup_error(format!("{path}: {e}")),
    };
    let revisions = Revisions::new(
        &service,
        &RevisionArgs {
            region: args.region.clone(),
            account: args.account.clone(),
            service_arn: args.service_arn.clone(),
            service_deployment_arn: args.service_deployment_arn.clone(),
            target_revision_arn: args.target_revision_arn.clone(),
            source_revision_arn: args.source_revision_arn.clone(),
            first_deployment: args.first_deployment,
        },
    );
    let (invoker, label) = if args.aws {
        let fallback = service.hook_region_account().map(|(r, _)| r);
        let invoker = Invoker::aws(args.region.clone(), fallback, args.invoke_timeout).await;
        (invoker, "AWS Lambda (Invoke API)".to_string())
    } else {
        let names: HashMap<String, String> = args.functions.iter().cloned().collect();
        (
            Invoker::local(&args.endpoint, names, args.invoke_timeout),
            args.endpoint.clone(),
        )
    };
    let options = Options {
        time_scale: args.time_scale,
        max_invocations: args.max_invocations,
        returned_details: match args.returned_details {
            DetailsArg::Merge => ReturnedDetails::Merge,
            DetailsArg::Replace => ReturnedDetails::Replace,
        },
        first_deployment: args.first_deployment,
    };
    reporter.start(
        &service,
        &revisions,
        args.first_deployment,
        args.time_scale,
        &label,
    );
    match Rehearsal::new(&service, &revisions, &invoker, &options, &reporter)
        .run()
        .await
    {
        Ok(summary) => {
            reporter.summary(&summary);
            summary.exit_code as u8
        }
        Err(e) => setup_error(e.0),
    }
}
