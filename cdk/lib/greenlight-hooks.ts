/**
 * The four Greenlight functions with their log groups and roles, and the role ECS assumes to
 * invoke them.
 */
import { createHash } from 'node:crypto';
import { ArnFormat, Aws, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as logs from 'aws-cdk-lib/aws-logs';
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
  /** The permissions the checks use, attached to each function's role. */
  public readonly checksPolicy: iam.ManagedPolicy;
  /** The role ECS assumes to invoke the four functions (`RoleArn` of a lifecycle hook). */
  public readonly invokeRole: iam.Role;

  constructor(scope: Construct, id: string, props: GreenlightHooksProps = {}) {
    super(scope, id);
    // A prefix given as a token (a template parameter) is checked by the template.
    const prefix = props.prefix !== undefined && Token.isUnresolved(props.prefix) ? props.prefix : validatePrefix(props.prefix ?? DEFAULT_PREFIX);
    this.prefix = prefix;
    const code = props.code ?? GreenlightCode.fromWorkspace();
    const fileConfigs = props.configFile ? resolveConfigFile(props.configFile) : {};
    this.configParameters = {};

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
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadOwnConfiguration',
          actions: ['ssm:GetParameter'],
          resources: [parameterArn(stack, parameterName)],
        }),
      );
    }
    if (settings.configParameterName !== undefined) {
      environment.GREENLIGHT_CONFIG_PARAMETER = settings.configParameterName;
      if (!isUnderPrefix(settings.configParameterName, prefix)) {
        role.addToPrincipalPolicy(
          new iam.PolicyStatement({
            sid: 'ReadConfigParameter',
            actions: ['ssm:GetParameter'],
            resources: [parameterArn(stack, settings.configParameterName)],
          }),
        );
      }
    }

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
        resources: [
          stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `${prefix}/*` }),
          stack.formatArn({
            service: 'secretsmanager',
            resource: 'secret',
            resourceName: `${prefix}/*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
      `Read-only, parameters and secrets whose names start with ${prefix}/: the configuration and credentials the checks are given.`,
    );

    // Notifications: topics named with the prefix, and any topic given.
    allow(
      new iam.PolicyStatement({
        sid: 'PublishNotifications',
        actions: ['sns:Publish'],
        resources: [
          stack.formatArn({ service: 'sns', resource: `${prefix}-*`, arnFormat: ArnFormat.NO_RESOURCE_NAME }),
          ...(props.notificationTopics ?? []).map((t) => t.topicArn),
        ],
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
      allow(
        new iam.PolicyStatement({
          sid: 'DescribeNetworkInterfaces',
          actions: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets'],
          resources: ['*'],
        }),
        'Read-only. These EC2 Describe actions support no resource-level permissions.',
      );
      allow(
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
      );
    }
  }
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
