#!/usr/bin/env node
/**
 * The Greenlight app: the hooks stack `<prefix>-hooks`, and with `-c examples=true` the two
 * example stacks. Context (`-c key=value`):
 *
 *   prefix                          resource name prefix (default: greenlight)
 *   lambdaDir                       use prebuilt binaries (target/lambda of `cargo lambda build
 *                                   --release --arm64`) instead of building during synthesis
 *   logRetentionDays                retention of the functions' log groups (default: 30)
 *   codeDeployApplications          comma-separated CodeDeploy applications the hooks report to
 *   migrationTaskDefinitionFamilies comma-separated task definition families migrations may run
 *   migrationTaskRoleArns           comma-separated roles those tasks use (passed to ECS tasks)
 *   migrationClusters               comma-separated clusters migrations may run in
 *   migrationLogGroups              comma-separated log groups of the migration containers
 *   migrationSourceBuckets          comma-separated S3 buckets holding SQL migrations
 *   databaseSecretArns              comma-separated secrets holding database connections
 *   prometheusWorkspaceArns         comma-separated Amazon Managed Service for Prometheus
 *                                   workspaces the metric checks query (aps:QueryMetrics)
 *   cloudWatchPromQL                true: the metric checks may query CloudWatch's PromQL API
 *                                   (cloudwatch:GetMetricData and cloudwatch:ListMetrics)
 *   metricRoleArns                  comma-separated roles the metric checks may assume to
 *                                   query a source in another account (sts:AssumeRole)
 *   metricSecretArns                comma-separated Secrets Manager secrets and SSM parameters,
 *                                   by ARN, holding metric source credentials (Datadog keys,
 *                                   Prometheus bearer tokens or passwords)
 *   vpcId, subnetIds                run the functions in these subnets of this VPC
 *   securityGroupIds                their security groups (default: one created, all egress,
 *                                   no ingress)
 *   config                          a JSON file: each function's configuration by function
 *                                   name, and `all`; validated, stored in SSM parameters
 *   decryptionKeyArns               comma-separated KMS keys of SecureString parameters and
 *                                   secrets the checks read
 *   alarmTopicArn                   SNS topic the alarms notify (alarm and OK)
 *   metricsNamespace                CloudWatch namespace of the decision metrics (Greenlight)
 *   approvals                       true: the approval endpoint (a public function URL), its
 *                                   store and signing key, and the rule for ECS PAUSE hooks
 *   slackSigningSecretArn           with approvals: the Slack app's signing secret (Secrets
 *                                   Manager ARN); without it, Slack buttons are refused
 *   slackBotTokenSecretArn          with approvals: a Slack bot token (usergroups:read), to
 *                                   resolve user-group approvers (Secrets Manager ARN)
 *   approvalRetentionDays           with approvals: days decisions are kept (default: 365)
 *   pauseHooks                      with approvals: false leaves out the ECS PAUSE hooks rule
 *   release                         true: the packaged template instead (`make release`):
 *                                   the same stack, its settings as template parameters, the
 *                                   code from zips in S3
 *   examples                        true: add the example stacks
 *   bundling                        false: do not build the functions (offline synthesis and
 *                                   tests; the templates then point at no code)
 *
 * The stacks are environment-agnostic: `cdk synth` needs no credentials, and `cdk deploy`
 * deploys to the account and region of the credentials in use.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Duration, Validations } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  DEFAULT_PREFIX,
  EcsBlueGreenExampleStack,
  GreenlightCode,
  GreenlightHooksStack,
  LambdaCanaryExampleStack,
  ReleaseStack,
  validatePrefix,
} from '../lib';

const app = new App();
const context = (key: string): string | undefined => {
  const value = app.node.tryGetContext(key);
  return value === undefined || value === null || value === '' ? undefined : String(value);
};
const list = (key: string): string[] | undefined =>
  context(key)
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/** A true/false setting: unset is false, anything else but `true` or `false` is refused. */
const flag = (key: string): boolean => {
  const value = context(key);
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new Error(`${key} must be true or false, not "${value}"`);
};

// The CLI refuses `aws:` keys in -c; this is the switch the tests set directly.
if (context('bundling') === 'false') {
  app.node.setContext('aws:cdk:bundling-stacks', []);
}

const prefix = validatePrefix(context('prefix') ?? DEFAULT_PREFIX);
const lambdaDir = context('lambdaDir');
const retentionDays = Number(context('logRetentionDays') ?? 30);
if (!Object.values(logs.RetentionDays).includes(retentionDays)) {
  throw new Error(`logRetentionDays ${retentionDays} is not a retention CloudWatch Logs offers`);
}

const families = list('migrationTaskDefinitionFamilies');
const taskRoleArns = list('migrationTaskRoleArns');
if ((families === undefined) !== (taskRoleArns === undefined)) {
  throw new Error('migrations need both migrationTaskDefinitionFamilies and migrationTaskRoleArns');
}

const approvals = flag('approvals');
const approvalKeys = ['slackSigningSecretArn', 'slackBotTokenSecretArn', 'approvalRetentionDays', 'pauseHooks'];
if (!approvals) {
  const given = approvalKeys.filter((k) => context(k) !== undefined);
  if (given.length > 0) throw new Error(`${given.join(', ')}: set only with -c approvals=true`);
}
const approvalRetentionDays = context('approvalRetentionDays');
if (approvalRetentionDays !== undefined && !/^[0-9]+$/.test(approvalRetentionDays)) {
  throw new Error(`approvalRetentionDays must be a whole number of days, not "${approvalRetentionDays}"`);
}

const configPath = context('config');
let configFile: Record<string, Record<string, unknown>> | undefined;
if (configPath) {
  const full = path.resolve(configPath);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch (e) {
    throw new Error(`config=${configPath}: cannot read ${full}: ${(e as Error).message}`);
  }
  try {
    configFile = JSON.parse(text);
  } catch (e) {
    throw new Error(`config=${configPath}: not JSON: ${(e as Error).message}`);
  }
}

if (context('release') === 'true') {
  // The packaged template (`make release`): settings are template parameters, the code comes
  // from zips in S3; nothing else is synthesised.
  new ReleaseStack(app, 'greenlight', {
    description: 'Greenlight deployment hooks for Amazon ECS blue/green and AWS CodeDeploy (packaged release)',
  });
} else {
  new GreenlightHooksStack(app, `${prefix}-hooks`, {
    description: `Greenlight deployment hooks (${prefix})`,
    prefix,
    code: lambdaDir ? GreenlightCode.fromBuildOutput(lambdaDir) : GreenlightCode.fromWorkspace(),
    logRetention: retentionDays as logs.RetentionDays,
    codeDeployApplications: list('codeDeployApplications'),
    migrations:
      families && taskRoleArns
        ? {
            taskDefinitionFamilies: families,
            taskRoleArns,
            clusters: list('migrationClusters'),
            logGroupNames: list('migrationLogGroups'),
          }
        : undefined,
    migrationSourceBuckets: list('migrationSourceBuckets'),
    databaseSecretArns: list('databaseSecretArns'),
    prometheusWorkspaceArns: list('prometheusWorkspaceArns'),
    cloudWatchPromQL: flag('cloudWatchPromQL'),
    metricRoleArns: list('metricRoleArns'),
    metricSecretArns: list('metricSecretArns'),
    vpcId: context('vpcId'),
    subnetIds: list('subnetIds'),
    securityGroupIds: list('securityGroupIds'),
    configFile,
    decryptionKeyArns: list('decryptionKeyArns'),
    alarmTopicArn: context('alarmTopicArn'),
    metricsNamespace: context('metricsNamespace'),
    approvals: approvals
      ? {
          slackSigningSecretArn: context('slackSigningSecretArn'),
          slackBotTokenSecretArn: context('slackBotTokenSecretArn'),
          retention: approvalRetentionDays === undefined ? undefined : Duration.days(Number(approvalRetentionDays)),
          pauseHooks: context('pauseHooks') === undefined ? undefined : flag('pauseHooks'),
        }
      : undefined,
  });

  if (context('examples') === 'true') {
    new EcsBlueGreenExampleStack(app, `${prefix}-example-ecs`, {
      description: 'Greenlight example: ECS blue/green service with hooks',
      prefix,
    });
    new LambdaCanaryExampleStack(app, `${prefix}-example-lambda-canary`, {
      description: 'Greenlight example: Lambda canary with CodeDeploy and hooks',
      prefix,
    });
  }
}

// cdk-nag's AWS Solutions checks: synthesis stops on any finding not acknowledged with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
