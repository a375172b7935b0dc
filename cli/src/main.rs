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
    /// Validate configurations offline, with the functions' own parser and messages: a
    /// configuration document, an ECS hook's hookDetails, an ECS service definition
    /// (CreateService / UpdateService input, ecspresso), or a CloudFormation template (every
    /// lifecycle hook's HookDetails and every function's GREENLIGHT_CONFIG). JSON only.
    ///
    /// Exit status: 0 when everything is valid, 1 when something is not, 2 when a file
    /// cannot be read.
    Validate(ValidateArgs),
    /// Run one gate once, from a laptop or CI, with your AWS credentials: the function's
    /// decision for an ECS event at a stage, in words and as JSON.
    ///
    /// Exit status: 0 SUCCEEDED, 1 FAILED, 3 IN_PROGRESS, 2 on a usage or setup error.
    Check(CheckArgs),
    /// Print the configuration's JSON Schema.
    Schema,
    /// Tell a decision record in words: a function's log line, an ECS answer, or the record.
    ///
    /// Exit status: 0, or 2 when no record is found.
    Explain(ExplainArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
struct ValidateArgs {
    /// The files to validate.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The functions' own configuration (what GREENLIGHT_CONFIG holds), merged under each
    /// hook's hookDetails.greenlight as the functions merge it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Args)]
struct CheckArgs {
    /// The function: before-install, after-install, before-allow-traffic, after-allow-traffic.
    #[arg(long)]
    function: String,
    /// The ECS lifecycle stage, e.g. POST_TEST_TRAFFIC_SHIFT.
    #[arg(long)]
    stage: String,
    /// The configuration (what GREENLIGHT_CONFIG would hold).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The ECS event to send [default: one for --stage, with placeholder ARNs].
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
    /// How long the gate may take.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct ExplainArgs {
    /// A file holding a log line (or lines), an answer, or a record; `-` reads stdin.
    file: PathBuf,
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

    /// Approve every approval a hook waits for, through this approval endpoint, as your IAM
    /// identity (as `greenlight approve` does). Without it (or --reject), the rehearsal waits
    /// for a person, within the hook's timeout.
    #[arg(long, value_name = "APPROVAL_ENDPOINT", conflicts_with = "reject")]
    approve: Option<String>,

    /// Reject every approval a hook waits for, through this approval endpoint.
    #[arg(long, value_name = "APPROVAL_ENDPOINT")]
    reject: Option<String>,
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
        Command::Validate(args) => validate(args),
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&greenlight::config::json_schema())
                    .unwrap_or_default()
            );
            0
        }
        Command::Explain(args) => explain(args),
    };
    ExitCode::from(code)
}

fn read_arg(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn validate(args: ValidateArgs) -> u8 {
    use greenlight_cli::validate;
    let env = match &args.config {
        None => None,
        Some(p) => match read_arg(p)
            .and_then(|t| validate::environment_source(&p.display().to_string(), &t))
        {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("greenlight validate: {e}");
                return 2;
            }
        },
    };
    let mut all = Vec::new();
    let mut unreadable = false;
    for f in &args.files {
        let name = f.display().to_string();
        match read_arg(f).and_then(|t| validate::validate(&name, &t, env.as_ref())) {
            Ok(found) => all.extend(found),
            Err(e) => {
                eprintln!("greenlight validate: {e}");
                unreadable = true;
            }
        }
    }
    match args.format {
        Format::Text => print!("{}", validate::text(&all)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default()),
    }
    if unreadable {
        2
    } else if all.iter().any(|f| !f.valid) {
        1
    } else {
        0
    }
}

fn explain(args: ExplainArgs) -> u8 {
    match read_arg(&args.file).and_then(|t| greenlight_cli::explain::read(&t)) {
        Ok(r) => {
            print!("{}", greenlight_cli::explain::explain(&r));
            0
        }
        Err(e) => {
            eprintln!("greenlight explain: {e}");
            2
        }
    }
}

async fn check(args: CheckArgs) -> u8 {
    let fail = |m: String| {
        eprintln!("greenlight check: {m}");
        2
    };
    let Some(role) = greenlight::Role::from_name(&args.function) else {
        return fail(format!(
            "unknown function {:?}; one of before-install, after-install, before-allow-traffic, after-allow-traffic",
            args.function
        ));
    };
    if greenlight::stage::Stage::known(&args.stage).is_none() {
        return fail(format!("unknown stage {:?}", args.stage));
    }
    let config = match read_arg(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let event: serde_json::Value = match &args.event {
        Some(p) => match read_arg(p).and_then(|t| {
            serde_json::from_str(&t).map_err(|e| format!("{}: not JSON: {e}", p.display()))
        }) {
            Ok(v) => v,
            Err(e) => return fail(e),
        },
        None => greenlight_cli::explain::sample_event(&args.stage),
    };
    let services =
        greenlight::Services::new(Ok(greenlight::services::BaseConfig::Inline(config)), None);
    let deadline = std::time::SystemTime::now() + args.timeout;
    let answer = match greenlight::handle(&services, role, &event, deadline).await {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    if let Some(r) = greenlight_cli::explain::record_of(&answer) {
        print!("{}", greenlight_cli::explain::explain(&r));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    match answer.get("hookStatus").and_then(serde_json::Value::as_str) {
        Some("SUCCEEDED") => 0,
        Some("FAILED") => 1,
        Some("IN_PROGRESS") => 3,
        _ => 2,
    }
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
        decide: match (args.approve, args.reject) {
            (Some(e), _) => Some((greenlight::approval::Action::Approve, e)),
            (None, Some(e)) => Some((greenlight::approval::Action::Reject, e)),
            (None, None) => None,
        },
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
