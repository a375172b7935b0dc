/**
 * Example: a Lambda function released through CodeDeploy as a canary: 10 % of the alias `Prod`
 * for five minutes, then all of it. An errors alarm rolls the alias back, and Greenlight's
 * before-allow-traffic and after-allow-traffic functions are the pre- and post-traffic hooks.
 *
 * CodeDeploy sends a hook nothing but its two ids, so the checks the hooks run for it come
 * from the functions' own configuration: deploy the hooks stack with
 * `-c config=examples/lambda-canary-gates.json`, whose `codeDeploy` entry for this
 * application checks the errors alarm before traffic moves, and the new version's own errors
 * (`ExecutedVersion=${newVersion}`) after. The hooks are wired to the functions' `live`
 * aliases. Change `message` and deploy again to start a canary deployment.
 */
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct, IConstruct } from 'constructs';
import { GreenlightHooks, type GreenlightHookFunctions } from '../greenlight-hooks';
import { DEFAULT_PREFIX, validatePrefix } from '../hooks';
import { acknowledge, skipCheckov } from '../nag';

export interface LambdaCanaryExampleStackProps extends StackProps {
  /** The prefix the hooks stack was deployed with. @default 'greenlight' */
  readonly prefix?: string;
  /** @default - the functions of the hooks stack deployed with `prefix` */
  readonly functions?: GreenlightHookFunctions;
  /** What the sample function answers; change it to release a new version. @default 'hello' */
  readonly message?: string;
}

export class LambdaCanaryExampleStack extends Stack {
  public readonly sample: lambda.Function;
  public readonly alias: lambda.Alias;
  public readonly errors: cloudwatch.Alarm;
  public readonly deploymentGroup: codedeploy.LambdaDeploymentGroup;
  public readonly application: codedeploy.LambdaApplication;

  constructor(scope: Construct, id: string, props: LambdaCanaryExampleStackProps = {}) {
    super(scope, id, props);
    const prefix = validatePrefix(props.prefix ?? DEFAULT_PREFIX);
    const greenlight = props.functions ?? GreenlightHooks.fromPrefix(this, 'GreenlightFunctions', prefix);

    const logGroup = new logs.LogGroup(this, 'SampleLogs', {
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'SampleRole', {
      description: 'The canary example function',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    logGroup.grantWrite(role);

    this.sample = new lambda.Function(this, 'Sample', {
      description: 'Greenlight canary example',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromInline(
        `exports.handler = async () => ({ statusCode: 200, body: ${JSON.stringify(props.message ?? 'hello')} });`,
      ),
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      memorySize: 128,
      timeout: Duration.seconds(10),
      // Old versions stay when a new one is published, so that CodeDeploy can shift the alias
      // back to one during a rollback.
      currentVersionOptions: { removalPolicy: RemovalPolicy.RETAIN },
    });

    skipCheckov(logGroup, 'CKV_AWS_158', 'An example: encrypted by CloudWatch Logs with its own keys, kept a week.');
    const sampleSkips: Record<string, string> = {
      CKV_AWS_115: 'An example function answering a constant: no concurrency to reserve.',
      CKV_AWS_116: 'An example invoked synchronously: there are no asynchronous events to keep.',
      CKV_AWS_117: 'An example that reaches nothing: no VPC needed.',
    };
    for (const [check, reason] of Object.entries(sampleSkips)) skipCheckov(this.sample, check, reason);

    this.alias = new lambda.Alias(this, 'Prod', {
      aliasName: 'Prod',
      version: this.sample.currentVersion,
    });

    // One error through the alias, in either version, stops the deployment and rolls it back.
    this.errors = new cloudwatch.Alarm(this, 'Errors', {
      // Named, so that the hooks' configuration (examples/lambda-canary-gates.json) can name it.
      alarmName: `${id}-errors`,
      alarmDescription: 'Errors of the canary example through its Prod alias; rolls a deployment back',
      metric: this.alias.metricErrors({ period: Duration.minutes(1), statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // Named, so that the hooks' configuration can hold settings for it (`codeDeploy`).
    this.application = new codedeploy.LambdaApplication(this, 'Application', { applicationName: id });
    this.deploymentGroup = new codedeploy.LambdaDeploymentGroup(this, 'Deployment', {
      application: this.application,
      deploymentGroupName: 'canary',
      alias: this.alias,
      deploymentConfig: codedeploy.LambdaDeploymentConfig.CANARY_10PERCENT_5MINUTES,
      alarms: [this.errors],
      preHook: greenlight.beforeAllowTraffic,
      postHook: greenlight.afterAllowTraffic,
      autoRollback: { failedDeployment: true, stoppedDeployment: true, deploymentInAlarm: true },
    });
    acknowledge(
      this.deploymentGroup,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]',
      "The AWS managed service-role policy for CodeDeploy's Lambda deployments (alias updates, alarms); invoking the hooks is granted separately on their two ARNs.",
    );
    for (const hook of [greenlight.beforeAllowTraffic, greenlight.afterAllowTraffic]) {
      // The hook's role is in the hooks stack and already allows the report on this group.
      // The L2 warns on the hook (an alias) and on the function behind it.
      const targets: IConstruct[] = [hook];
      if ('version' in hook) targets.push((hook as lambda.IAlias).version.lambda);
      for (const target of targets) {
        acknowledge(
          target,
          '@aws-cdk/aws-iam:unknownPrincipalAddStatementToRole',
          "Greenlight's function roles allow codedeploy:PutLifecycleEventHookExecutionStatus on the deployment groups of the account and region; the grant CodeDeploy's L2 adds has nowhere to go for a function of another stack.",
        );
      }
    }

    new CfnOutput(this, 'AliasArn', { value: this.alias.functionArn });
    new CfnOutput(this, 'DeploymentGroupName', { value: this.deploymentGroup.deploymentGroupName });
  }
}
