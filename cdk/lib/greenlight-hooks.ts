/**
 * The four Greenlight functions with their log groups and roles, and the role ECS assumes to
 * invoke them; with `approvals`, the approval endpoint, its store and signing key.
 */
import { createHash } from 'node:crypto';
import { ArnFormat, Aws, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { GreenlightCode } from './code';
import { type GreenlightConfigFile, resolveConfigFile, validateConfig } from './config-schema';
import {
  DEFAULT_METRICS_NAMESPACE,
  DEFAULT_PREFIX,
  HOOKS,
  type HookName,
  type HookSpec,
  LIVE_ALIAS,
  functionName,
  validatePrefix,
} from './hooks';
import { GreenlightMonitoring } from './monitoring';
import { acknowledge, acknowledgeWildcards, skipCheckov } from './nag';

/** A Greenlight configuration document (docs/configuration.md), or part of one. */
export type GreenlightConfig = { readonly [key: string]: unknown };

/** The four functions, wherever they were created. */
export interface GreenlightHookFunctions {
  readonly beforeInstall: lambda.IFunction;
  readonly afterInstall: lambda.IFunction;
  readonly beforeAllowTraffic: lambda.IFunction;
  readonly afterAllowTraffic: lambda.IFunction;
}

/** How `GreenlightHooks.fromPrefix` names the functions. */
export interface GreenlightImportOptions {
  /**
   * The alias or version the hooks invoke: `live` (the version deployed last), a version
   * number to pin the hooks to (`'7'`), or `null` for the unqualified function ($LATEST).
   * @default 'live'
   */
  readonly qualifier?: string | null;
}

/** Settings of one function. */
export interface GreenlightFunctionSettings {
  /**
   * The function's configuration, set as `GREENLIGHT_CONFIG`; validated at synthesis against
   * `docs/greenlight.schema.json`. @default - none
   */
  readonly config?: GreenlightConfig;
  /**
   * The name of an SSM parameter holding the configuration, set as
   * `GREENLIGHT_CONFIG_PARAMETER`. Parameters under `<prefix>/` are readable already; the
   * function is given read access to any other name given here. @default - none
   */
  readonly configParameterName?: string;
  /** @default Duration.minutes(5) */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
}

/** What the migrations check may run. */
export interface GreenlightMigrationsOptions {
  /** Task definition families the functions may run (`ecs:RunTask`), any revision. */
  readonly taskDefinitionFamilies: string[];
  /** ARNs of the task roles and execution roles of those task definitions (`iam:PassRole` to ECS tasks). */
  readonly taskRoleArns: string[];
  /** Cluster names the tasks may run in. @default - any cluster in the account and region */
  readonly clusters?: string[];
  /**
   * Log groups of the migration containers (their `awslogs-group`), whose last lines a
   * failed task's record carries (`logs:GetLogEvents`). @default - any log group in the account and region
   */
  readonly logGroupNames?: string[];
}

/**
 * The approval endpoint (`approvals`): what the `approval` check's links, Slack's buttons and
 * ECS PAUSE hooks reach.
 */
export interface GreenlightApprovalsOptions {
  /**
   * Secrets Manager ARN of the Slack app's signing secret (Slack buttons); without it, Slack
   * interactions are refused. The full ARN, with the six characters Secrets Manager appends
   * to the name. @default - none
   */
  readonly slackSigningSecretArn?: string;
  /**
   * Secrets Manager ARN of a Slack bot token (`usergroups:read`), to resolve Slack user-group
   * approvers. The full ARN. @default - none
   */
  readonly slackBotTokenSecretArn?: string;
  /** How long decisions are kept in the store: a whole number of days, at least 1. @default Duration.days(365) */
  readonly retention?: Duration;
  /**
   * Drive ECS PAUSE hooks: an EventBridge rule sends `ECS Hook State Change` events to the
   * endpoint. @default true
   */
  readonly pauseHooks?: boolean;
  /**
   * Reserved concurrency of the endpoint function, 1 to 100: a public URL's cost stays
   * bounded. @default 5
   */
  readonly reservedConcurrency?: number;
}

export interface GreenlightHooksProps {
  /** Prefix of every resource name. @default 'greenlight' */
  readonly prefix?: string;
  /** Where the code comes from. @default GreenlightCode.fromWorkspace() */
  readonly code?: GreenlightCode;
  /** Per-function settings. */
  readonly functions?: { readonly [K in HookName]?: GreenlightFunctionSettings };
  /** Retention of the functions' log groups, which `cdk destroy` removes. @default ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /**
   * CodeDeploy applications whose deployments the functions may report on. @default - every
   * deployment group in the account and region
   */
  readonly codeDeployApplications?: string[];
  /** SNS topics the functions may publish to, besides those named `<prefix>-*`. */
  readonly notificationTopics?: sns.ITopic[];
  /** Lets the migrationTask check run tasks. @default - no task may be run */
  readonly migrations?: GreenlightMigrationsOptions;
  /**
   * S3 buckets holding SQL migrations for the postgresMigrations check (`source:
   * "s3://bucket/prefix/"`): listed and read. @default - none
   */
  readonly migrationSourceBuckets?: string[];
  /**
   * Secrets Manager secrets the postgresMigrations check reads its database connection from
   * (e.g. an RDS-managed `rds!db-…` secret), besides those named `<prefix>/…`. @default - none
   */
  readonly databaseSecretArns?: string[];
  /**
   * Amazon Managed Service for Prometheus workspaces the `metricThreshold` and `canary` checks
   * query (a `prometheus` source at `https://aps-workspaces.REGION.amazonaws.com/workspaces/ID`),
   * by ARN: `arn:aws:aps:REGION:ACCOUNT:workspace/ws-…`. Each is granted `aps:QueryMetrics`
   * (instant and range queries). @default - none
   */
  readonly prometheusWorkspaceArns?: string[];
  /**
   * Lets the metric checks query CloudWatch's PromQL API (a `prometheus` source at
   * `https://monitoring.REGION.amazonaws.com`): `cloudwatch:GetMetricData` and
   * `cloudwatch:ListMetrics`, which support no resource-level permissions. @default false
   */
  readonly cloudWatchPromQL?: boolean;
  /**
   * Roles the metric checks may assume (`sts:AssumeRole`) to query a source in another account
   * (a query's `roleArn`, e.g. a role there allowed `aps:QueryMetrics` on its workspace).
   * Each role's trust policy must allow the functions' roles. @default - none
   */
  readonly metricRoleArns?: string[];
  /**
   * Credentials of metric sources (a Datadog API key and application key, a Prometheus,
   * Grafana Cloud or Mimir bearer token or basic-auth password), by ARN: Secrets Manager
   * secrets (`secretsmanager:GetSecretValue`; the full ARN, with the six characters Secrets
   * Manager appends to the name) and SSM parameters (`ssm:GetParameter`). Secrets and
   * parameters named `<prefix>/…` are readable already. @default - none
   */
  readonly metricSecretArns?: string[];
  /**
   * ECR repositories whose scan findings the image admission check may read.
   * @default - the repositories in the account and region
   */
  readonly ecrRepositoryArns?: string[];
  /** KMS keys of SecureString parameters, secrets or topics the functions read or write. */
  readonly decryptionKeys?: kms.IKey[];
  /** Runs the functions in a VPC, to reach private endpoints. @default - no VPC */
  readonly vpc?: ec2.IVpc;
  /** @default - the VPC's private subnets */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** @default - a security group that allows all outbound traffic and no inbound */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /**
   * Each function's configuration, by function name (`before-install`, ...), with `all` merged
   * under each (JSON Merge Patch): validated at synthesis, stored in an SSM String parameter
   * `/<prefix>/config/<function>` and named in `GREENLIGHT_CONFIG_PARAMETER`. A change
   * publishes a new version of the function. @default - none
   */
  readonly configFile?: GreenlightConfigFile;
  /** CloudWatch namespace of the decision metrics (`GREENLIGHT_METRICS_NAMESPACE`). @default 'Greenlight' */
  readonly metricsNamespace?: string;
  /** Where the alarms go, when they go off and when they are OK again. @default - no action */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Gives the functions' roles the permissions Lambda needs to place them in a VPC, even
   * without `vpc` (a template that decides at deployment). @default - only with `vpc`
   */
  readonly networkInterfacePermissions?: boolean;
  /**
   * Approvals: the `approval` check's endpoint (a Lambda function URL, `<prefix>-approvals`),
   * its store (an S3 bucket) and signing key (a Secrets Manager secret), and the EventBridge
   * rule that drives ECS PAUSE hooks. The four functions and the endpoint are given
   * `GREENLIGHT_APPROVAL_BUCKET`, `GREENLIGHT_APPROVAL_KEY` and the URL. The endpoint reads the
   * `approval` checks and `notifications` of PAUSE hooks from the after-allow-traffic
   * function's configuration (`functions.afterAllowTraffic`, or the `after-allow-traffic`
   * entry of `configFile` with `all`): the same `GREENLIGHT_CONFIG` or
   * `GREENLIGHT_CONFIG_PARAMETER`. It runs in the same network as the hooks (`vpc`). Off
   * unless set.
   * @default - no approvals
   */
  readonly approvals?: GreenlightApprovalsOptions;
}

/** The approval endpoint's binary, and the last part of its function name. */
export const APPROVALS_BINARY = 'approvals';
/** The name of the SSM parameter holding the approval URL: `/<prefix>/approvals/url`. */
export function approvalUrlParameterName(prefix: string): string {
  return `/${prefix}/approvals/url`;
}

/** How often Lambda retries a failed asynchronous invocation before it goes to the queue. */
export const ASYNC_RETRY_ATTEMPTS = 2;
/**
 * How long an asynchronous invocation may wait (throttled, or between retries) before it
 * goes to the queue: CodeDeploy fails a lifecycle event no one reported in an hour, so an
 * older continuation is better known about than run.
 */
export const ASYNC_MAX_EVENT_AGE = Duration.minutes(30);

export class GreenlightHooks extends Construct implements GreenlightHookFunctions {
  /**
   * The functions of a Greenlight hooks stack deployed with `prefix` in the scope's account
   * and region, for use in another app.
   */
  public static fromPrefix(
    scope: Construct,
    id: string,
    prefix: string = DEFAULT_PREFIX,
    options: GreenlightImportOptions = {},
  ): GreenlightHookFunctions {
    validatePrefix(prefix);
    const holder = new Construct(scope, id);
    const stack = Stack.of(scope);
    const qualifier = options.qualifier === undefined ? LIVE_ALIAS : options.qualifier;
    if (qualifier !== null && !/^(\$LATEST|[0-9]+|[a-zA-Z0-9-_]+)$/.test(qualifier)) {
      throw new Error(`invalid qualifier "${qualifier}": a version number or an alias name`);
    }
    const imported = (spec: HookSpec) => {
      const fn = lambda.Function.fromFunctionAttributes(holder, spec.constructId, {
        functionArn: stack.formatArn({
          service: 'lambda',
          resource: 'function',
          resourceName: functionName(prefix, spec),
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
        sameEnvironment: true,
      });
      if (qualifier === null) return fn;
      // The hook names the alias (or a version): `arn:...:function:greenlight-before-install:live`.
      return lambda.Alias.fromAliasAttributes(holder, `${spec.constructId}Qualified`, {
        aliasName: qualifier,
        aliasVersion: lambda.Version.fromVersionAttributes(holder, `${spec.constructId}Version`, {
          lambda: fn,
          version: qualifier,
        }),
      });
    };
    const [beforeInstall, afterInstall, beforeAllowTraffic, afterAllowTraffic] = HOOKS.map(imported);
    return { beforeInstall, afterInstall, beforeAllowTraffic, afterAllowTraffic };
  }

  public readonly prefix: string;
  /** The `live` alias of each function: what hooks are wired to. */
  public readonly beforeInstall: lambda.Alias;
  public readonly afterInstall: lambda.Alias;
  public readonly beforeAllowTraffic: lambda.Alias;
  public readonly afterAllowTraffic: lambda.Alias;
  /** The four functions, in the order before-install, after-install, before-, after-allow-traffic. */
  public readonly functions: lambda.Function[];
  /** Their `live` aliases, in the same order: each points at the version published last. */
  public readonly aliases: lambda.Alias[];
  /** The SSM parameters holding the functions' configuration (`configFile`), by function name. */
  public readonly configParameters: { [name: string]: ssm.StringParameter };
  /**
   * Asynchronous invocations (CodeDeploy's, and a hook's continuations) that failed after
   * Lambda's retries or grew too old: kept 14 days, and alarmed on.
   */
  public readonly failedInvocations: sqs.Queue;
  /** Alarms, dashboard and saved Logs Insights queries. */
  public readonly monitoring: GreenlightMonitoring;
  /** How each function was told of its configuration, by hook: shared with the approval endpoint. */
  private readonly configSources: { [K in HookName]?: ConfigSource } = {};
  /** The permissions the checks use, attached to each function's role. */
  public readonly checksPolicy: iam.ManagedPolicy;
  /** The role ECS assumes to invoke the four functions (`RoleArn` of a lifecycle hook). */
  public readonly invokeRole: iam.Role;
  /** The approval endpoint, `<prefix>-approvals` (with `approvals`). */
  public readonly approvalsFunction?: lambda.Function;
  /** Its function URL, public by design: the function verifies every request (with `approvals`). */
  public readonly approvalsUrl?: lambda.FunctionUrl;
  /** Where approval decisions are kept, under `approvals/` (with `approvals`). */
  public readonly approvalStore?: s3.Bucket;
  /** The key approval links are signed with (with `approvals`). */
  public readonly approvalKey?: secretsmanager.Secret;
  /**
   * The SSM parameter `/<prefix>/approvals/url` holding the URL, which the endpoint reads
   * (its own URL cannot be in its environment without a circular dependency) (with `approvals`).
   */
  public readonly approvalUrlParameter?: ssm.StringParameter;
  /** The rule sending `ECS Hook State Change` events to the endpoint (with `approvals`, unless `pauseHooks` is false). */
  public readonly pauseHooksRule?: events.Rule;

  constructor(scope: Construct, id: string, props: GreenlightHooksProps = {}) {
    super(scope, id);
    // A prefix given as a token (a template parameter) is checked by the template.
    const prefix = props.prefix !== undefined && Token.isUnresolved(props.prefix) ? props.prefix : validatePrefix(props.prefix ?? DEFAULT_PREFIX);
    this.prefix = prefix;
    const code = props.code ?? GreenlightCode.fromWorkspace();
    const fileConfigs = props.configFile ? resolveConfigFile(props.configFile) : {};
    this.configParameters = {};
    const approvals = props.approvals ? checkApprovals(props.approvals) : undefined;

    this.failedInvocations = new sqs.Queue(this, 'FailedInvocations', {
      queueName: `${prefix}-failed-invocations`,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    skipCheckov(
      this.failedInvocations,
      'CKV_AWS_27',
      'Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled); the check only recognises a KMS key.',
    );
    acknowledge(
      this.failedInvocations,
      'AwsSolutions-SQS3',
      "This queue is itself where failed asynchronous invocations end up (the functions' on-failure destination); what lands here is alarmed on and read by a person.",
    );

    this.checksPolicy = new iam.ManagedPolicy(this, 'ChecksPolicy', {
      description: `What Greenlight's checks read and do (${prefix})`,
    });
    this.addCheckPermissions(props);

    const created = HOOKS.map((spec) => this.createFunction(spec, code, props, fileConfigs[spec.binary as keyof typeof fileConfigs]));
    const fns = created.map((c) => c.fn);
    this.functions = fns;
    this.aliases = created.map((c) => c.alias);
    [this.beforeInstall, this.afterInstall, this.beforeAllowTraffic, this.afterAllowTraffic] = this.aliases;

    if (approvals) {
      const a = this.createApprovals(approvals, code, props);
      this.approvalStore = a.store;
      this.approvalKey = a.key;
      this.approvalsFunction = a.fn;
      this.approvalsUrl = a.url;
      this.approvalUrlParameter = a.urlParameter;
      this.pauseHooksRule = a.rule;
      // The hooks name the URL in the links they send; the endpoint names none of the hooks.
      for (const fn of fns) {
        fn.addEnvironment('GREENLIGHT_APPROVAL_BUCKET', a.store.bucketName);
        fn.addEnvironment('GREENLIGHT_APPROVAL_KEY', a.key.secretArn);
        fn.addEnvironment('GREENLIGHT_APPROVAL_URL', a.url.url);
        // The Slack secrets are the endpoint's alone: a hook's configuration may not name
        // them (a notification header, say), so the hooks are told which they are.
        const reserved = [props.approvals?.slackSigningSecretArn, props.approvals?.slackBotTokenSecretArn].filter(
          (x): x is string => !!x,
        );
        if (reserved.length > 0) fn.addEnvironment('GREENLIGHT_RESERVED_SECRETS', reserved.join(','));
      }
    }

    // ECS invokes the hooks with a role the service names in each lifecycle hook. It may
    // invoke these four functions and nothing else, and ECS may assume it only on behalf of
    // this account's services (aws:SourceAccount, against the confused deputy). The name
    // carries the region because IAM names are global to the account and the stack is
    // deployed once per region.
    this.invokeRole = new iam.Role(this, 'EcsInvokeRole', {
      roleName: `${prefix}-ecs-hooks-${Aws.REGION}`,
      description: `ECS assumes this role to invoke Greenlight's hooks (${prefix})`,
      assumedBy: new iam.ServicePrincipal('ecs.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    });
    // The hooks name the `live` alias; a service pinned to a version names `<function>:<n>`.
    const invoke = new iam.PolicyStatement({
      sid: 'InvokeGreenlightHooks',
      actions: ['lambda:InvokeFunction'],
      resources: fns.flatMap((fn) => [fn.functionArn, `${fn.functionArn}:*`]),
    });
    this.invokeRole.addToPrincipalPolicy(invoke);
    acknowledgeWildcards(
      this.invokeRole,
      invoke,
      "Only Greenlight's four functions: `:*` covers their `live` alias and the versions a service may be pinned to.",
    );

    this.monitoring = new GreenlightMonitoring(this, 'Monitoring', {
      prefix,
      functions: HOOKS.map((spec, i) => ({ name: spec.binary, fn: fns[i], logGroup: created[i].logGroup })),
      failedInvocations: this.failedInvocations,
      metricsNamespace: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
      alarmTopic: props.alarmTopic,
    });
  }

  private createFunction(
    spec: HookSpec,
    code: GreenlightCode,
    props: GreenlightHooksProps,
    fileConfig: Record<string, unknown> | undefined,
  ): { fn: lambda.Function; alias: lambda.Alias; logGroup: logs.LogGroup } {
    const prefix = this.prefix;
    const name = functionName(prefix, spec);
    const settings = props.functions?.[spec.key] ?? {};
    const stack = Stack.of(this);

    // Created here rather than by Lambda, so that it has a retention and goes with `cdk destroy`.
    const logGroup = new logs.LogGroup(this, `${spec.constructId}Logs`, {
      logGroupName: `/aws/lambda/${name}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const role = new iam.Role(this, `${spec.constructId}Role`, {
      description: `Greenlight's ${spec.binary} function (${prefix})`,
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      managedPolicies: [this.checksPolicy],
    });
    logGroup.grantWrite(role);

    // CodeDeploy invokes a hook once and waits up to an hour for its report: a wait longer
    // than one invocation can only go on in a new asynchronous invocation of the same function.
    // The ARN is built from the name (not taken from the function) so that the role's policy
    // does not depend on the function, which depends on the role.
    const selfArn = stack.formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: name,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const selfInvoke = new iam.PolicyStatement({
      sid: 'InvokeItself',
      actions: ['lambda:InvokeFunction'],
      resources: [selfArn, `${selfArn}:*`],
    });
    role.addToPrincipalPolicy(selfInvoke);
    acknowledgeWildcards(
      role,
      selfInvoke,
      'Only this function, by its own name: `:*` covers the versions and aliases it may be invoked through.',
    );

    const environment: Record<string, string> = {
      GREENLIGHT_METRICS_NAMESPACE: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE,
    };
    // What the function was told of its configuration, for the approval endpoint to share.
    let readParameterArn: string | undefined;
    const sources = [settings.config, settings.configParameterName, fileConfig].filter((x) => x !== undefined);
    if (sources.length > 1) {
      throw new Error(
        `${spec.key}: give one of config, configParameterName or an entry in configFile (the function refuses both GREENLIGHT_CONFIG and GREENLIGHT_CONFIG_PARAMETER)`,
      );
    }
    if (settings.config !== undefined) {
      validateConfig(settings.config, `functions.${spec.key}.config`);
      environment.GREENLIGHT_CONFIG = stack.toJsonString(settings.config);
    }
    if (fileConfig !== undefined) {
      const value = JSON.stringify(fileConfig);
      const parameterName = `/${prefix}/config/${spec.binary}`;
      const parameter = new ssm.StringParameter(this, `${spec.constructId}Config`, {
        parameterName,
        description: `Greenlight's ${spec.binary} configuration (${prefix}); the function reads it on each cold start`,
        stringValue: value,
        // Standard parameters hold 4 KB, advanced ones 8 KB.
        tier: Buffer.byteLength(value) > 4096 ? ssm.ParameterTier.ADVANCED : ssm.ParameterTier.STANDARD,
      });
      this.configParameters[spec.binary] = parameter;
      // By name, as the function reads it; the function is created after the parameter (below).
      environment.GREENLIGHT_CONFIG_PARAMETER = parameterName;
      // The parameter's content is not part of the function, so its digest is: a changed
      // configuration changes the function, which publishes a new version behind `live`.
      environment.GREENLIGHT_CONFIG_SHA256 = createHash('sha256').update(value).digest('hex');
      readParameterArn = parameterArn(stack, parameterName);
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadOwnConfiguration',
          actions: ['ssm:GetParameter'],
          resources: [readParameterArn],
        }),
      );
    }
    if (settings.configParameterName !== undefined) {
      environment.GREENLIGHT_CONFIG_PARAMETER = settings.configParameterName;
      if (!isUnderPrefix(settings.configParameterName, prefix)) {
        readParameterArn = parameterArn(stack, settings.configParameterName);
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            sid: 'ReadConfigParameter',
            actions: ['ssm:GetParameter'],
            resources: [readParameterArn],
          }),
        );
      }
    }
    this.configSources[spec.key] = {
      environment: { ...environment },
      readParameterArn,
      parameter: this.configParameters[spec.binary],
    };

    const fn = code._createFunction(this, spec.constructId, spec.binary, {
      functionName: name,
      description: `Greenlight ${spec.binary} deployment hook`,
      role,
      // The checks are I/O-bound (HTTP probes and AWS calls) and the binary needs a few tens of
      // MB; 256 MB buys the CPU share that keeps TLS handshakes and cold starts short.
      memorySize: settings.memorySize ?? 256,
      // Pending checks are polled inside one invocation while its time budget lasts (the
      // timeout less a tenth, at most 30 s, kept back to answer): five minutes give a health
      // check 4.5 minutes to settle in one invocation. A longer wait goes on in the next
      // invocation: ECS calls again after IN_PROGRESS, and a CodeDeploy hook invokes itself.
      timeout: settings.timeout ?? Duration.minutes(5),
      // JSON: the decision record is one JSON line, and Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON.
      loggingFormat: lambda.LoggingFormat.JSON,
      logGroup,
      environment,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? props.vpcSubnets : undefined,
      securityGroups: props.vpc ? props.securityGroups : undefined,
      // Versions stay when a new one is published: a service may be pinned to one.
      currentVersionOptions: { removalPolicy: RemovalPolicy.RETAIN },
    });

    skipCheckov(
      logGroup,
      'CKV_AWS_158',
      'Encrypted by CloudWatch Logs with its own keys; the decision records hold no secret (secrets are never logged), so a customer key adds cost and no protection.',
    );
    skipCheckov(
      fn,
      'CKV_AWS_116',
      "Asynchronous invocations that fail go to the on-failure destination of the function's EventInvokeConfig (the failed-invocations queue), which supersedes a DLQ; the check does not read it.",
    );
    skipCheckov(
      fn,
      'CKV_AWS_115',
      'A reserved concurrency would throttle the gates of a platform-wide rollout (every service deploying at once); throttles are alarmed on instead.',
    );
    skipCheckov(
      fn,
      'CKV_AWS_173',
      'The environment holds no secret (a parameter name, a digest, a namespace); Lambda encrypts it at rest. Secrets are read from Secrets Manager or SSM at run time.',
    );
    if (!props.vpc && !props.networkInterfacePermissions) {
      skipCheckov(
        fn,
        'CKV_AWS_117',
        'No VPC was given: the checks reach public endpoints and the AWS APIs. Give vpcId and subnetIds to reach private ones.',
      );
    }

    const configParameter = this.configParameters[spec.binary];
    if (configParameter) fn.node.addDependency(configParameter);

    // Every change of code or configuration publishes a version; `live` follows the latest.
    const alias = new lambda.Alias(this, `${spec.constructId}Live`, {
      aliasName: LIVE_ALIAS,
      version: fn.currentVersion,
      description: `The version of ${name} deployed last`,
    });

    // Nothing lost: CodeDeploy invokes the hooks asynchronously (the alias), and a hook's
    // continuation invokes the version it runs (the function's AWS_LAMBDA_FUNCTION_VERSION;
    // $LATEST when run unpublished). A failure after the retries, or an event too old, goes
    // to the queue, which is alarmed on.
    const asyncOptions: lambda.EventInvokeConfigOptions = {
      retryAttempts: ASYNC_RETRY_ATTEMPTS,
      maxEventAge: ASYNC_MAX_EVENT_AGE,
      onFailure: new destinations.SqsDestination(this.failedInvocations),
    };
    fn.configureAsyncInvoke(asyncOptions);
    fn.currentVersion.configureAsyncInvoke(asyncOptions);
    alias.configureAsyncInvoke(asyncOptions);
    return { fn, alias, logGroup };
  }

  /**
   * The approval endpoint (`approvals`): the store, the signing key, the function and its
   * public URL, the parameter holding the URL, and the rule bringing it ECS PAUSE hooks. The
   * four functions' access to the store and the key goes into the checks policy.
   */
  private createApprovals(
    a: ApprovalsSettings,
    code: GreenlightCode,
    props: GreenlightHooksProps,
  ): {
    store: s3.Bucket;
    key: secretsmanager.Secret;
    fn: lambda.Function;
    url: lambda.FunctionUrl;
    urlParameter: ssm.StringParameter;
    rule?: events.Rule;
  } {
    const prefix = this.prefix;
    const stack = Stack.of(this);
    const name = `${prefix}-${APPROVALS_BINARY}`;

    // The store: one object per decision under approvals/. The decisions are an audit trail:
    // versioned, and kept when the stack goes. CloudFormation names the bucket: bucket names
    // are global, and one derived from the prefix could be taken in another account.
    const store = new s3.Bucket(this, 'ApprovalStore', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: 'ExpireDecisions',
          expiration: a.retention,
          noncurrentVersionExpiration: a.retention,
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
    const noAccessLogs =
      "The decisions are written by Greenlight's functions only (their roles are the only principals granted access, to approvals/), each kept as an object version for the retention; CloudTrail data events can record reads. A log bucket would itself need one.";
    acknowledge(store, 'AwsSolutions-S1', noAccessLogs);
    skipCheckov(store, 'CKV_AWS_18', noAccessLogs);
    skipCheckov(
      store,
      'CKV_AWS_144',
      'Decisions matter while a deployment waits for them and as a record afterwards; a copy in another region would add cost and no availability a deployment needs.',
    );
    skipCheckov(
      store,
      'CKV_AWS_145',
      'Encrypted at rest with S3-managed keys; a decision holds no secret (approvers, a verdict, a time), so a customer key adds cost and no protection.',
    );

    // The key approval links are signed with (HMAC). Rotating it would invalidate every link in
    // flight; replace it by hand (a new value) to revoke them all.
    const key = new secretsmanager.Secret(this, 'ApprovalKey', {
      secretName: `${prefix}/approval-signing-key`,
      description: `Greenlight's approval links are signed with this key (${prefix}); a new value invalidates the links in flight`,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    const noRotation =
      'Approval links are signed with this key and stay valid until their deployment is decided; rotating it would invalidate the links in flight. A new value is set by hand to revoke them all.';
    acknowledge(key, 'AwsSolutions-SMG4', noRotation);
    skipCheckov(
      key,
      'CKV_AWS_149',
      "Encrypted with Secrets Manager's AWS managed key; read only by Greenlight's functions, whose roles name it. A customer key adds cost and no protection.",
    );

    // The hooks sign the links, and record and read decisions.
    const storeObjects = `${store.bucketArn}/approvals/*`;
    const storeReason = 'Only the approvals/ prefix of the approval store: one object per decision, named after the deployment and the check.';
    const hookStore = new iam.PolicyStatement({
      sid: 'ReadWriteApprovals',
      actions: ['s3:GetObject', 's3:PutObject'],
      resources: [storeObjects],
    });
    this.checksPolicy.addStatements(
      hookStore,
      new iam.PolicyStatement({
        sid: 'ReadApprovalKey',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [key.secretArn],
      }),
    );
    acknowledgeWildcards(this.checksPolicy, hookStore, storeReason);

    // The endpoint's own role: the store and the key, continuing paused ECS deployments, and
    // the notifications of pause hooks, as the hooks send them.
    const logGroup = new logs.LogGroup(this, 'ApprovalsLogs', {
      logGroupName: `/aws/lambda/${name}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'ApprovalsRole', {
      description: `Greenlight's approvals endpoint (${prefix})`,
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    logGroup.grantWrite(role);
    const allow = (statement: iam.PolicyStatement, wildcardReason?: string) => {
      role.addToPrincipalPolicy(statement);
      if (wildcardReason) acknowledgeWildcards(role, statement, wildcardReason);
    };
    const ecsArn = (resource: string) => stack.formatArn({ service: 'ecs', resource, resourceName: '*' });
    const urlParameterName = approvalUrlParameterName(prefix);
    allow(
      new iam.PolicyStatement({
        sid: 'ReadWriteApprovals',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [storeObjects],
      }),
      storeReason,
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadApprovalKey',
        actions: ['secretsmanager:GetSecretValue'],
        resources: [key.secretArn],
      }),
    );
    const slackSecrets = [a.slackSigningSecretArn, a.slackBotTokenSecretArn].filter((x): x is string => x !== undefined);
    if (slackSecrets.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'ReadSlackSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: slackSecrets,
        }),
      );
    }
    allow(
      new iam.PolicyStatement({
        sid: 'ReadApprovalUrl',
        actions: ['ssm:GetParameter'],
        resources: [parameterArn(stack, urlParameterName)],
      }),
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadEcsDeployments',
        actions: ['ecs:DescribeServiceDeployments', 'ecs:DescribeServiceRevisions'],
        resources: [ecsArn('service-deployment'), ecsArn('service-revision')],
      }),
      'Read-only. The deployments and revisions are those of whichever service pauses for an approval, in this account and region; they are not known when the endpoint is deployed.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ContinueEcsDeployments',
        actions: ['ecs:ContinueServiceDeployment'],
        resources: [ecsArn('service-deployment')],
      }),
      'Continuing (or rolling back) a deployment paused at a PAUSE hook, once its approval is decided: the deployments of this account and region, not known when the endpoint is deployed. The endpoint acts only on a verified decision.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadTaskDefinitions',
        actions: ['ecs:DescribeTaskDefinition'],
        resources: ['*'],
      }),
      'Read-only. ecs:DescribeTaskDefinition supports no resource-level permissions.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadNotificationSecrets',
        actions: ['ssm:GetParameter', 'secretsmanager:GetSecretValue'],
        resources: prefixedParameterAndSecretArns(stack, prefix),
      }),
      `Read-only, parameters and secrets whose names start with ${prefix}/: the configuration and the notification channels' secrets, as the hooks read them.`,
    );
    allow(
      new iam.PolicyStatement({
        sid: 'PublishNotifications',
        actions: ['sns:Publish'],
        resources: notificationTopicArns(stack, prefix, props),
      }),
      `Topics whose names start with ${prefix}- in this account and region, which the platform team creates for notifications, as for the hooks.`,
    );
    // The configuration of the after-allow-traffic function: the same variables, the same parameter.
    const config = this.configSources.afterAllowTraffic ?? {
      environment: { GREENLIGHT_METRICS_NAMESPACE: props.metricsNamespace ?? DEFAULT_METRICS_NAMESPACE },
    };
    if (config.readParameterArn) {
      allow(
        new iam.PolicyStatement({
          sid: 'ReadConfiguration',
          actions: ['ssm:GetParameter'],
          resources: [config.readParameterArn],
        }),
      );
    }
    for (const k of props.decryptionKeys ?? []) {
      k.grantDecrypt(role);
    }
    if (props.vpc || props.networkInterfacePermissions) {
      for (const [statement, reason] of networkInterfaceStatements(stack)) allow(statement, reason);
    }

    const environment: Record<string, string> = {
      ...config.environment,
      GREENLIGHT_APPROVAL_BUCKET: store.bucketName,
      GREENLIGHT_APPROVAL_KEY: key.secretArn,
      // Its own URL would make the function depend on itself (the URL names the function): the
      // endpoint reads it from this parameter, which CloudFormation writes once the URL exists.
      GREENLIGHT_APPROVAL_URL_PARAMETER: urlParameterName,
    };
    if (a.slackSigningSecretArn) environment.GREENLIGHT_SLACK_SIGNING_SECRET = a.slackSigningSecretArn;
    if (a.slackBotTokenSecretArn) environment.GREENLIGHT_SLACK_BOT_TOKEN = a.slackBotTokenSecretArn;

    const fn = code._createFunction(this, 'Approvals', APPROVALS_BINARY, {
      functionName: name,
      description: 'Greenlight approvals endpoint (function URL, ECS PAUSE hooks)',
      role,
      memorySize: 256,
      // A request is answered in a few AWS calls; Slack wants its answer within 3 seconds.
      timeout: Duration.seconds(30),
      // The URL is public: a flood of requests costs at most this many concurrent invocations.
      reservedConcurrentExecutions: a.reservedConcurrency,
      loggingFormat: lambda.LoggingFormat.JSON,
      logGroup,
      environment,
      // The hooks' network: the same notification endpoints and AWS APIs.
      vpc: props.vpc,
      vpcSubnets: props.vpc ? props.vpcSubnets : undefined,
      securityGroups: props.vpc ? props.securityGroups : undefined,
    });
    if (config.parameter) fn.node.addDependency(config.parameter);
    skipCheckov(
      logGroup,
      'CKV_AWS_158',
      'Encrypted by CloudWatch Logs with its own keys; the records hold no secret (links, signatures and secrets are never logged), so a customer key adds cost and no protection.',
    );
    skipCheckov(
      fn,
      'CKV_AWS_116',
      "Asynchronous invocations (EventBridge's) that fail go to the on-failure destination of the function's EventInvokeConfig (the failed-invocations queue), which supersedes a DLQ; the check does not read it.",
    );
    skipCheckov(
      fn,
      'CKV_AWS_173',
      'The environment holds no secret (a bucket name, ARNs, a parameter name); Lambda encrypts it at rest. The signing key and Slack secrets are read from Secrets Manager at run time.',
    );
    if (!props.vpc && !props.networkInterfacePermissions) {
      skipCheckov(
        fn,
        'CKV_AWS_117',
        'No VPC was given: the endpoint reaches Slack and the AWS APIs, as the hooks do. Give vpcId and subnetIds to run it in the hooks\' VPC.',
      );
    }

    // Public by design (authType NONE): the function verifies every request itself, an
    // HMAC-signed link (signed with the key above), Slack's request signature (with the
    // signing secret), or a caller identity presigned with STS (sts:GetCallerIdentity). An
    // unverified request changes nothing; the reserved concurrency bounds what a flood costs.
    const url = fn.addFunctionUrl({
      authType: lambda.FunctionUrlAuthType.NONE,
      invokeMode: lambda.InvokeMode.BUFFERED,
    });
    const publicReason =
      "Public by design: approvers follow links from chat and email, and Slack posts its buttons' interactions. The function verifies every request itself (an HMAC-signed link, Slack's request signature, or an STS-presigned caller identity) and refuses any other; its reserved concurrency bounds what a flood costs.";
    skipCheckov(url, 'CKV_AWS_258', publicReason);
    for (const child of fn.node.children) {
      // The two permissions the URL adds (lambda:InvokeFunctionUrl, and lambda:InvokeFunction through the URL).
      if (child instanceof lambda.CfnPermission && child.principal === '*') skipCheckov(child, 'CKV_AWS_301', publicReason);
    }

    const urlParameter = new ssm.StringParameter(this, 'ApprovalUrl', {
      parameterName: urlParameterName,
      description: `Greenlight's approval URL (${prefix}); the approvals endpoint reads it`,
      stringValue: url.url,
    });

    // Nothing lost: EventBridge's invocations are asynchronous; a failure after Lambda's
    // retries, or an event too old, goes to the queue, which is alarmed on.
    fn.configureAsyncInvoke({
      retryAttempts: ASYNC_RETRY_ATTEMPTS,
      maxEventAge: Duration.hours(1),
      onFailure: new destinations.SqsDestination(this.failedInvocations),
    });

    let rule: events.Rule | undefined;
    if (a.pauseHooks) {
      rule = new events.Rule(this, 'PauseHooks', {
        ruleName: `${prefix}-ecs-pause-hooks`,
        description: `ECS PAUSE hooks to Greenlight's approvals endpoint (${prefix})`,
        eventPattern: { source: ['aws.ecs'], detailType: ['ECS Hook State Change'] },
        targets: [
          new targets.LambdaFunction(fn, {
            maxEventAge: Duration.hours(1),
            retryAttempts: 3,
            deadLetterQueue: this.failedInvocations,
          }),
        ],
      });
    }
    return { store, key, fn, url, urlParameter, rule };
  }

  private addCheckPermissions(props: GreenlightHooksProps): void {
    const policy = this.checksPolicy;
    const stack = Stack.of(this);
    const prefix = this.prefix;
    const arn = (service: string, resource: string, sep: ArnFormat = ArnFormat.SLASH_RESOURCE_NAME) =>
      stack.formatArn({ service, resource, resourceName: '*', arnFormat: sep });
    const allow = (statement: iam.PolicyStatement, wildcardReason?: string) => {
      policy.addStatements(statement);
      if (wildcardReason) acknowledgeWildcards(policy, statement, wildcardReason);
    };

    // Reading the deployment: the service, its deployments and revisions, and its tasks.
    allow(
      new iam.PolicyStatement({
        sid: 'ReadEcsDeployments',
        actions: [
          'ecs:DescribeServices',
          'ecs:DescribeServiceDeployments',
          'ecs:DescribeServiceRevisions',
          'ecs:DescribeTasks',
        ],
        resources: [
          arn('ecs', 'service'),
          arn('ecs', 'service-deployment'),
          arn('ecs', 'service-revision'),
          arn('ecs', 'task'),
        ],
      }),
      'Read-only. The services, deployments and revisions are those of whichever service names these hooks, in this account and region; they are not known when the hooks are deployed.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadEcsUnscoped',
        actions: ['ecs:DescribeTaskDefinition', 'ecs:ListTasks'],
        resources: ['*'],
      }),
      'Read-only. ecs:DescribeTaskDefinition supports no resource-level permissions, and ecs:ListTasks is authorized against container instances, which Fargate tasks do not have.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadTargetHealth',
        actions: ['elasticloadbalancing:DescribeTargetHealth', 'elasticloadbalancing:DescribeTargetGroups'],
        resources: ['*'],
      }),
      'Read-only. Elastic Load Balancing Describe actions support no resource-level permissions.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadMetrics',
        actions: ['cloudwatch:GetMetricData'],
        resources: ['*'],
      }),
      'Read-only. cloudwatch:GetMetricData supports no resource-level permissions.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadAlarms',
        actions: ['cloudwatch:DescribeAlarms'],
        resources: [arn('cloudwatch', 'alarm', ArnFormat.COLON_RESOURCE_NAME)],
      }),
      "Read-only, alarms in this account and region: the services' alarms are not known when the hooks are deployed.",
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadImageScanFindings',
        actions: ['ecr:DescribeImageScanFindings'],
        resources: props.ecrRepositoryArns ?? [arn('ecr', 'repository')],
      }),
      'Read-only, the repositories given in ecrRepositoryArns, or those of this account and region: the images a deployment brings are not known when the hooks are deployed.',
    );

    // CodeDeploy: learning what is deployed, and reporting the verdict.
    const groups = (props.codeDeployApplications ?? ['*']).map((app) =>
      stack.formatArn({
        service: 'codedeploy',
        resource: 'deploymentgroup',
        resourceName: `${app}/*`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadCodeDeployDeployments',
        actions: ['codedeploy:GetDeployment', 'codedeploy:GetDeploymentGroup'],
        resources: groups,
      }),
      'Read-only, the deployment groups of the CodeDeploy applications these hooks serve (all in this account and region unless codeDeployApplications narrows them).',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReadCodeDeployTargets',
        actions: ['codedeploy:GetDeploymentTarget', 'codedeploy:ListDeploymentTargets'],
        resources: ['*'],
      }),
      'Read-only. These CodeDeploy actions support no resource-level permissions.',
    );
    allow(
      new iam.PolicyStatement({
        sid: 'ReportToCodeDeploy',
        actions: ['codedeploy:PutLifecycleEventHookExecutionStatus'],
        resources: groups,
      }),
      "The report is authorized against the deployment's group (arn:...:deploymentgroup:APPLICATION/GROUP); the groups that will use these hooks are not known when they are deployed, so the pattern covers the applications given in codeDeployApplications, or every group in this account and region.",
    );

    // Configuration and secrets, by name prefix.
    allow(
      new iam.PolicyStatement({
        sid: 'ReadConfigurationAndSecrets',
        actions: ['ssm:GetParameter', 'secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: prefixedParameterAndSecretArns(stack, prefix),
      }),
      `Read-only, parameters and secrets whose names start with ${prefix}/: the configuration and credentials the checks are given.`,
    );

    // Notifications: topics named with the prefix, and any topic given.
    allow(
      new iam.PolicyStatement({
        sid: 'PublishNotifications',
        actions: ['sns:Publish'],
        resources: notificationTopicArns(stack, prefix, props),
      }),
      `Topics whose names start with ${prefix}- in this account and region, which the platform team creates for notifications.`,
    );

    // Migrations: run the given task definitions, pass only their roles, stop only tasks.
    if (props.migrations) {
      const m = props.migrations;
      if (m.taskDefinitionFamilies.length === 0 || m.taskRoleArns.length === 0) {
        throw new Error('migrations: name at least one task definition family and the roles its tasks use');
      }
      const clusters = m.clusters?.map((c) =>
        stack.formatArn({ service: 'ecs', resource: 'cluster', resourceName: c }),
      );
      allow(
        new iam.PolicyStatement({
          sid: 'RunMigrationTasks',
          actions: ['ecs:RunTask'],
          resources: m.taskDefinitionFamilies.map((family) =>
            stack.formatArn({ service: 'ecs', resource: 'task-definition', resourceName: `${family}:*` }),
          ),
          conditions: clusters ? { ArnEquals: { 'ecs:cluster': clusters } } : undefined,
        }),
        'Only the migration task definition families given, any revision: each release registers a new one.',
      );
      allow(
        new iam.PolicyStatement({
          sid: 'StopMigrationTasks',
          actions: ['ecs:StopTask'],
          resources: (m.clusters ?? ['*']).map((c) =>
            stack.formatArn({ service: 'ecs', resource: 'task', resourceName: `${c}/*` }),
          ),
        }),
        'Tasks in the migration clusters (any in this account and region unless clusters is given); task ids are not known before the task runs.',
      );
      allow(
        new iam.PolicyStatement({
          sid: 'ReadMigrationTasks',
          actions: ['ecs:DescribeTaskSets'],
          resources: [arn('ecs', 'task-set')],
        }),
        "Read-only: the green task set's task definition of a CodeDeploy deployment; its services are not known when the hooks are deployed.",
      );
      allow(
        new iam.PolicyStatement({
          sid: 'ReadMigrationTaskLogs',
          actions: ['logs:GetLogEvents'],
          resources: (m.logGroupNames ?? ['*']).map((g) =>
            stack.formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: `${g}:log-stream:*`,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          ),
        }),
        'Read-only: the log streams of the migration tasks, named by ECS after each task id.',
      );
      allow(
        new iam.PolicyStatement({
          sid: 'PassMigrationTaskRoles',
          actions: ['iam:PassRole'],
          resources: m.taskRoleArns,
          conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        }),
      );
    }

    const secrets = props.databaseSecretArns ?? [];
    if (secrets.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'ReadDatabaseSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: secrets,
        }),
      );
    }

    // Metric sources beyond CloudWatch's GetMetricData, for the metricThreshold and canary checks.
    const workspaces = checkArns(
      'prometheusWorkspaceArns',
      props.prometheusWorkspaceArns,
      AMP_WORKSPACE_ARN,
      AMP_WORKSPACE_ARN_FORM,
    );
    if (workspaces.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'QueryPrometheusWorkspaces',
          actions: ['aps:QueryMetrics'],
          resources: workspaces,
        }),
      );
    }
    if (props.cloudWatchPromQL) {
      // CloudWatch's PromQL API: requests to https://monitoring.REGION.amazonaws.com/api/v1/query
      // and /api/v1/query_range, signed for the service `monitoring`. AWS documents that a query
      // needs both cloudwatch:GetMetricData and cloudwatch:ListMetrics
      // (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-PromQL-Querying.html,
      // "Querying with the HTTP API", and the table it refers to,
      // https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-PromQL.html#CloudWatch-PromQL-IAM).
      // GetMetricData is in ReadMetrics too; this statement names the pair the API requires.
      allow(
        new iam.PolicyStatement({
          sid: 'QueryCloudWatchPromQL',
          actions: ['cloudwatch:GetMetricData', 'cloudwatch:ListMetrics'],
          resources: ['*'],
        }),
        "Read-only. CloudWatch's PromQL API requires cloudwatch:GetMetricData and cloudwatch:ListMetrics, which support no resource-level permissions.",
      );
    }
    const metricRoles = checkArns('metricRoleArns', props.metricRoleArns, ROLE_ARN, ROLE_ARN_FORM);
    if (metricRoles.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'AssumeMetricRoles',
          actions: ['sts:AssumeRole'],
          resources: metricRoles,
        }),
      );
    }
    const metricSecrets = checkArns(
      'metricSecretArns',
      props.metricSecretArns,
      SECRET_OR_PARAMETER_ARN,
      SECRET_OR_PARAMETER_ARN_FORM,
    );
    const isParameter = (a: string) => /^arn:[^:]+:ssm:/.test(a);
    const secretArns = metricSecrets.filter((a) => !isParameter(a));
    const parameterArns = metricSecrets.filter(isParameter);
    if (secretArns.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'ReadMetricSecrets',
          actions: ['secretsmanager:GetSecretValue'],
          resources: secretArns,
        }),
      );
    }
    if (parameterArns.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'ReadMetricParameters',
          actions: ['ssm:GetParameter'],
          resources: parameterArns,
        }),
      );
    }

    const buckets = props.migrationSourceBuckets ?? [];
    if (buckets.length > 0) {
      allow(
        new iam.PolicyStatement({
          sid: 'ReadMigrationFiles',
          actions: ['s3:ListBucket', 's3:GetObject'],
          resources: buckets.flatMap((b) => [`arn:${stack.partition}:s3:::${b}`, `arn:${stack.partition}:s3:::${b}/*`]),
        }),
        'Read-only: the SQL migration files in the buckets given in migrationSourceBuckets.',
      );
    }

    for (const key of props.decryptionKeys ?? []) {
      key.grantDecrypt(policy);
    }

    // Lambda creates the functions' network interfaces in the VPC with their roles.
    if (props.vpc || props.networkInterfacePermissions) {
      for (const [statement, reason] of networkInterfaceStatements(stack)) allow(statement, reason);
    }
  }
}

/** What Lambda needs of a VPC function's role to manage its network interfaces, each with the reason for its wildcard. */
function networkInterfaceStatements(stack: Stack): Array<[iam.PolicyStatement, string]> {
  return [
    [
      new iam.PolicyStatement({
        sid: 'DescribeNetworkInterfaces',
        actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
        resources: ['*'],
      }),
      'Read-only. These EC2 Describe actions support no resource-level permissions.',
    ],
    [
      new iam.PolicyStatement({
        sid: 'ManageNetworkInterfaces',
        actions: [
          'ec2:CreateNetworkInterface',
          'ec2:DeleteNetworkInterface',
          'ec2:AssignPrivateIpAddresses',
          'ec2:UnassignPrivateIpAddresses',
        ],
        resources: [stack.formatArn({ service: 'ec2', resource: '*', resourceName: '*' })],
      }),
      "Lambda manages the functions' network interfaces, whose ids are not known in advance; the pattern is limited to this account and region, as AWS documents for VPC functions.",
    ],
  ];
}

/** Parameters and secrets named `<prefix>/…`: the configuration and the notification channels' secrets. */
function prefixedParameterAndSecretArns(stack: Stack, prefix: string): string[] {
  return [
    stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `${prefix}/*` }),
    stack.formatArn({
      service: 'secretsmanager',
      resource: 'secret',
      resourceName: `${prefix}/*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    }),
  ];
}

/** The topics notifications may go to: those named `<prefix>-…`, and those given. */
function notificationTopicArns(stack: Stack, prefix: string, props: GreenlightHooksProps): string[] {
  return [
    stack.formatArn({ service: 'sns', resource: `${prefix}-*`, arnFormat: ArnFormat.NO_RESOURCE_NAME }),
    ...(props.notificationTopics ?? []).map((t) => t.topicArn),
  ];
}

/** A function's configuration: its environment, and the parameter it reads beyond `<prefix>/`. */
interface ConfigSource {
  /** `GREENLIGHT_METRICS_NAMESPACE`, and `GREENLIGHT_CONFIG` or `GREENLIGHT_CONFIG_PARAMETER` (with its digest). */
  readonly environment: Record<string, string>;
  /** The parameter's ARN, when the prefix's read access does not cover it. */
  readonly readParameterArn?: string;
  /** The parameter created from `configFile`, which the function is created after. */
  readonly parameter?: ssm.StringParameter;
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9_+=.@!?\/-]+$/;
const SECRET_ARN_FORM = 'a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf)';

/** The approvals options, checked, with their defaults. */
interface ApprovalsSettings {
  readonly slackSigningSecretArn?: string;
  readonly slackBotTokenSecretArn?: string;
  readonly retention: Duration;
  readonly pauseHooks: boolean;
  readonly reservedConcurrency: number;
}

/** Checks the approvals options: a mistake fails synthesis naming the setting. Tokens are left to the template. */
function checkApprovals(options: GreenlightApprovalsOptions): ApprovalsSettings {
  const [slackSigningSecretArn] = checkArns(
    'approvals.slackSigningSecretArn',
    options.slackSigningSecretArn === undefined ? undefined : [options.slackSigningSecretArn],
    SECRET_ARN,
    SECRET_ARN_FORM,
  );
  const [slackBotTokenSecretArn] = checkArns(
    'approvals.slackBotTokenSecretArn',
    options.slackBotTokenSecretArn === undefined ? undefined : [options.slackBotTokenSecretArn],
    SECRET_ARN,
    SECRET_ARN_FORM,
  );
  const reservedConcurrency = options.reservedConcurrency ?? 5;
  if (
    !Token.isUnresolved(reservedConcurrency) &&
    !(Number.isInteger(reservedConcurrency) && reservedConcurrency >= 1 && reservedConcurrency <= 100)
  ) {
    throw new Error(`approvals.reservedConcurrency: ${reservedConcurrency} is not an integer from 1 to 100`);
  }
  const retention = options.retention ?? Duration.days(365);
  if (!retention.isUnresolved()) {
    const days = retention.toHours({ integral: false }) / 24;
    if (days < 1 || !Number.isInteger(days)) {
      throw new Error(
        `approvals.retention: ${retention.toHumanString()} is not a whole number of days, at least 1 (S3 expires objects by the day)`,
      );
    }
  }
  return {
    slackSigningSecretArn,
    slackBotTokenSecretArn,
    retention,
    pauseHooks: options.pauseHooks !== false,
    reservedConcurrency,
  };
}

const AMP_WORKSPACE_ARN = /^arn:aws[a-z-]*:aps:[a-z0-9-]+:[0-9]{12}:workspace\/ws-[A-Za-z0-9-]+$/;
const AMP_WORKSPACE_ARN_FORM =
  'an Amazon Managed Service for Prometheus workspace ARN (arn:aws:aps:REGION:ACCOUNT:workspace/ws-…)';
const ROLE_ARN = /^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[A-Za-z0-9_+=,.@\/-]+$/;
const ROLE_ARN_FORM = 'an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)';
const SECRET_OR_PARAMETER_ARN =
  /^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9_+=.@!?\/-]+|ssm:[a-z0-9-]+:[0-9]{12}:parameter\/[A-Za-z0-9_.\/-]+)$/;
const SECRET_OR_PARAMETER_ARN_FORM =
  'a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf) or an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)';

/**
 * The ARNs of a list setting, each checked against the form it names: a mistake fails
 * synthesis naming the setting. No wildcard passes. Tokens (template parameters) are left to
 * the template.
 */
function checkArns(key: string, arns: readonly string[] | undefined, form: RegExp, description: string): string[] {
  for (const arn of arns ?? []) {
    if (!Token.isUnresolved(arn) && !form.test(arn)) {
      throw new Error(`${key}: "${arn}" is not ${description}`);
    }
  }
  return [...(arns ?? [])];
}

function isUnderPrefix(parameterName: string, prefix: string): boolean {
  return parameterName.startsWith(`${prefix}/`) || parameterName.startsWith(`/${prefix}/`);
}

/** The ARN of an SSM parameter named with or without a leading slash. */
function parameterArn(stack: Stack, name: string): string {
  return stack.formatArn({
    service: 'ssm',
    resource: 'parameter',
    resourceName: name.startsWith('/') ? name.slice(1) : name,
  });
}
