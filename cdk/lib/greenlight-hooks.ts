/**
 * The four Greenlight functions with their log groups and roles, and the role ECS assumes to
 * invoke them.
 */
import { ArnFormat, Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { GreenlightCode } from './code';
import { DEFAULT_PREFIX, HOOKS, type HookName, type HookSpec, functionName, validatePrefix } from './hooks';
import { acknowledgeWildcards } from './nag';

/** A Greenlight configuration document (docs/configuration.md), or part of one. */
export type GreenlightConfig = { readonly [key: string]: unknown };

/** The four functions, wherever they were created. */
export interface GreenlightHookFunctions {
  readonly beforeInstall: lambda.IFunction;
  readonly afterInstall: lambda.IFunction;
  readonly beforeAllowTraffic: lambda.IFunction;
  readonly afterAllowTraffic: lambda.IFunction;
}

/** Settings of one function. */
export interface GreenlightFunctionSettings {
  /** The function's configuration, set as `GREENLIGHT_CONFIG`. @default - none */
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
  /** @default - a security group that allows all outbound traffic */
  readonly securityGroups?: ec2.ISecurityGroup[];
}

export class GreenlightHooks extends Construct implements GreenlightHookFunctions {
  /**
   * The functions of a Greenlight hooks stack deployed with `prefix` in the scope's account
   * and region, for use in another app.
   */
  public static fromPrefix(scope: Construct, id: string, prefix: string = DEFAULT_PREFIX): GreenlightHookFunctions {
    validatePrefix(prefix);
    const holder = new Construct(scope, id);
    const stack = Stack.of(scope);
    const imported = (spec: HookSpec) =>
      lambda.Function.fromFunctionAttributes(holder, spec.constructId, {
        functionArn: stack.formatArn({
          service: 'lambda',
          resource: 'function',
          resourceName: functionName(prefix, spec),
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        }),
        sameEnvironment: true,
      });
    const [beforeInstall, afterInstall, beforeAllowTraffic, afterAllowTraffic] = HOOKS.map(imported);
    return { beforeInstall, afterInstall, beforeAllowTraffic, afterAllowTraffic };
  }

  public readonly prefix: string;
  public readonly beforeInstall: lambda.Function;
  public readonly afterInstall: lambda.Function;
  public readonly beforeAllowTraffic: lambda.Function;
  public readonly afterAllowTraffic: lambda.Function;
  /** The four functions, in the order before-install, after-install, before-, after-allow-traffic. */
  public readonly functions: lambda.Function[];
  /** The permissions the checks use, attached to each function's role. */
  public readonly checksPolicy: iam.ManagedPolicy;
  /** The role ECS assumes to invoke the four functions (`RoleArn` of a lifecycle hook). */
  public readonly invokeRole: iam.Role;

  constructor(scope: Construct, id: string, props: GreenlightHooksProps = {}) {
    super(scope, id);
    const prefix = validatePrefix(props.prefix ?? DEFAULT_PREFIX);
    this.prefix = prefix;
    const code = props.code ?? GreenlightCode.fromWorkspace();

    this.checksPolicy = new iam.ManagedPolicy(this, 'ChecksPolicy', {
      description: `What Greenlight's checks read and do (${prefix})`,
    });
    this.addCheckPermissions(props);

    const fns = HOOKS.map((spec) => this.createFunction(spec, code, props));
    [this.beforeInstall, this.afterInstall, this.beforeAllowTraffic, this.afterAllowTraffic] = fns;
    this.functions = fns;

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
    this.invokeRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeGreenlightHooks',
        actions: ['lambda:InvokeFunction'],
        resources: fns.map((fn) => fn.functionArn),
      }),
    );
  }

  private createFunction(spec: HookSpec, code: GreenlightCode, props: GreenlightHooksProps): lambda.Function {
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

    const environment: Record<string, string> = {};
    if (settings.config !== undefined && settings.configParameterName !== undefined) {
      throw new Error(
        `${spec.key}: set config or configParameterName, not both (the function refuses both GREENLIGHT_CONFIG and GREENLIGHT_CONFIG_PARAMETER)`,
      );
    }
    if (settings.config !== undefined) {
      environment.GREENLIGHT_CONFIG = stack.toJsonString(settings.config);
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
    });
    return fn;
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
    if (props.vpc) {
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
