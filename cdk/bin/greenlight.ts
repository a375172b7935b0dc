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
 *   examples                        true: add the example stacks
 *   bundling                        false: do not build the functions (offline synthesis and
 *                                   tests; the templates then point at no code)
 *
 * The stacks are environment-agnostic: `cdk synth` needs no credentials, and `cdk deploy`
 * deploys to the account and region of the credentials in use.
 */
import { App, Validations } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  DEFAULT_PREFIX,
  EcsBlueGreenExampleStack,
  GreenlightCode,
  GreenlightHooksStack,
  LambdaCanaryExampleStack,
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

// cdk-nag's AWS Solutions checks: synthesis stops on any finding not acknowledged with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
