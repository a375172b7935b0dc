/**
 * The packaged release: the hooks stack as one CloudFormation template that installs from
 * zips in an S3 bucket, its settings template parameters, for teams without Rust or Node
 * (`make release` writes it to `dist/greenlight.template.json`). It is synthesised from the
 * same construct as `cdk deploy greenlight-hooks`, so the two cannot drift apart.
 */
import {
  Aws,
  BootstraplessSynthesizer,
  CfnCondition,
  CfnParameter,
  CfnOutput,
  type CfnResource,
  Fn,
  Stack,
  type StackProps,
  Token,
} from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { GreenlightCode } from './code';
import { GreenlightHooks } from './greenlight-hooks';
import { DEFAULT_METRICS_NAMESPACE, DEFAULT_PREFIX, HOOKS, INVOKE_ROLE_OUTPUT } from './hooks';
import { acknowledge } from './nag';
import { workspaceVersion } from './version';

export interface ReleaseStackProps extends StackProps {
  /** The release's version, named in the default artifact prefix. @default - the workspace's version */
  readonly version?: string;
}

/** Retentions CloudWatch Logs offers, in days. */
const RETENTIONS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

export class ReleaseStack extends Stack {
  public readonly hooks: GreenlightHooks;

  constructor(scope: Construct, id: string, props: ReleaseStackProps = {}) {
    super(scope, id, {
      ...props,
      // No CDK bootstrap in the target account: the template is deployed as it is.
      synthesizer: new BootstraplessSynthesizer(),
      analyticsReporting: false,
    });
    const version = props.version ?? workspaceVersion();

    const prefix = new CfnParameter(this, 'Prefix', {
      type: 'String',
      default: DEFAULT_PREFIX,
      allowedPattern: '^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$',
      constraintDescription: '1 to 32 lower-case letters, digits or hyphens, starting with a letter and not ending with a hyphen',
      description: 'Prefix of every resource name: functions <Prefix>-before-install, ..., parameters and secrets /<Prefix>/...',
    });
    const bucket = new CfnParameter(this, 'ArtifactBucket', {
      type: 'String',
      allowedPattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$',
      description: 'The S3 bucket, in this region, holding the four function zips',
    });
    const keyPrefix = new CfnParameter(this, 'ArtifactPrefix', {
      type: 'String',
      default: `greenlight/${version}/`,
      description: 'Key prefix of the zips in ArtifactBucket: <ArtifactPrefix>before-install.zip, ... A new prefix for each release publishes new versions.',
    });
    const vpcId = new CfnParameter(this, 'VpcId', {
      type: 'String',
      default: '',
      allowedPattern: '^(vpc-[0-9a-f]+)?$',
      description: 'The VPC of SubnetIds: needed only when SubnetIds is given and SecurityGroupIds is not (a security group is created in it)',
    });
    const subnetIds = new CfnParameter(this, 'SubnetIds', {
      type: 'CommaDelimitedList',
      default: '',
      description: 'Private subnets to run the functions in (with NAT or VPC endpoints to the AWS APIs); empty: no VPC',
    });
    const securityGroupIds = new CfnParameter(this, 'SecurityGroupIds', {
      type: 'CommaDelimitedList',
      default: '',
      description: "The functions' security groups in the VPC; empty: one is created, all egress and no ingress",
    });
    const configParameters = HOOKS.map(
      (spec) =>
        new CfnParameter(this, `${spec.constructId}ConfigParameter`, {
          type: 'String',
          default: '',
          allowedPattern: '^(/[a-zA-Z0-9_.\\-/]+)?$',
          description: `SSM parameter with the ${spec.binary} function's configuration (GREENLIGHT_CONFIG_PARAMETER), named /<Prefix>/...; empty: none`,
        }),
    );
    const configRevision = new CfnParameter(this, 'ConfigRevision', {
      type: 'String',
      default: '1',
      allowedPattern: '^[A-Za-z0-9._-]{1,32}$',
      description: 'Change it after changing a configuration parameter to publish new versions behind the live aliases',
    });
    const alarmTopicArn = new CfnParameter(this, 'AlarmTopicArn', {
      type: 'String',
      default: '',
      allowedPattern: '^(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]+)?$',
      description: 'SNS topic the alarms notify (alarm and OK); empty: none',
    });
    const keyArns = new CfnParameter(this, 'DecryptionKeyArns', {
      type: 'CommaDelimitedList',
      default: '',
      description: 'KMS keys of SecureString parameters and secrets the checks read (kms:Decrypt); empty: none',
    });
    const namespace = new CfnParameter(this, 'MetricsNamespace', {
      type: 'String',
      default: DEFAULT_METRICS_NAMESPACE,
      allowedPattern: '^[A-Za-z0-9_./#:-]{1,255}$',
      description: 'CloudWatch namespace of the decision metrics',
    });
    const retention = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: '30',
      allowedValues: RETENTIONS.map(String),
      description: "Retention of the functions' log groups, in days",
    });
    this.templateOptions.metadata = {
      'AWS::CloudFormation::Interface': {
        ParameterGroups: [
          { Label: { default: 'Code' }, Parameters: ['ArtifactBucket', 'ArtifactPrefix', 'Prefix'] },
          { Label: { default: 'Network' }, Parameters: ['SubnetIds', 'SecurityGroupIds', 'VpcId'] },
          {
            Label: { default: 'Configuration' },
            Parameters: [...configParameters.map((p) => p.logicalId), 'ConfigRevision', 'DecryptionKeyArns'],
          },
          { Label: { default: 'Monitoring' }, Parameters: ['AlarmTopicArn', 'MetricsNamespace', 'LogRetentionDays'] },
        ],
      },
    };

    const notEmpty = (id: string, value: string) =>
      new CfnCondition(this, id, { expression: Fn.conditionNot(Fn.conditionEquals(value, '')) });
    const hasVpc = notEmpty('HasVpc', Fn.join('', subnetIds.valueAsList));
    const hasSecurityGroups = notEmpty('HasSecurityGroups', Fn.join('', securityGroupIds.valueAsList));
    const createSecurityGroup = new CfnCondition(this, 'CreateSecurityGroup', {
      expression: Fn.conditionAnd(hasVpc, Fn.conditionNot(hasSecurityGroups)),
    });
    const hasAlarmTopic = notEmpty('HasAlarmTopic', alarmTopicArn.valueAsString);
    const hasKeys = notEmpty('HasDecryptionKeys', Fn.join('', keyArns.valueAsList));

    const artifacts = s3.Bucket.fromBucketName(this, 'Artifacts', bucket.valueAsString);
    acknowledge(
      artifacts,
      '@aws-cdk/aws-lambda:codeFromBucketObjectVersionNotSpecified',
      'Each release has its own ArtifactPrefix (greenlight/<version>/): new code is a new key, which updates the functions and publishes new versions.',
    );
    this.hooks = new GreenlightHooks(this, 'Hooks', {
      prefix: prefix.valueAsString,
      code: GreenlightCode.fromBucket(artifacts, keyPrefix.valueAsString),
      logRetention: Token.asNumber(retention.value) as logs.RetentionDays,
      metricsNamespace: namespace.valueAsString,
      networkInterfacePermissions: true,
    });

    // The network, decided at deployment.
    const sg = new ec2.CfnSecurityGroup(this, 'SecurityGroup', {
      groupDescription: 'Greenlight functions: outbound to the endpoints their checks probe and to the AWS APIs, no inbound',
      vpcId: vpcId.valueAsString,
      securityGroupEgress: [{ ipProtocol: '-1', cidrIp: '0.0.0.0/0', description: 'All outbound' }],
    });
    sg.cfnOptions.condition = createSecurityGroup;
    sg.addMetadata('checkov', {
      skip: [
        {
          id: 'CKV_AWS_382',
          comment: "The checks probe endpoints the platform team names (any host and port); there is no inbound rule",
        },
      ],
    });

    this.hooks.functions.forEach((fn, i) => {
      const cfn = fn.node.defaultChild as lambda.CfnFunction;
      cfn.addPropertyOverride(
        'VpcConfig',
        Fn.conditionIf(
          hasVpc.logicalId,
          {
            SubnetIds: subnetIds.valueAsList,
            SecurityGroupIds: Fn.conditionIf(hasSecurityGroups.logicalId, securityGroupIds.valueAsList, [sg.attrGroupId]),
          },
          Aws.NO_VALUE,
        ),
      );
      const emptyDefaults =
        'The VPC settings are taken only when SubnetIds is given (Fn::If HasVpc); the check reads the empty defaults.';
      for (const rule of ['F3031', 'E1150']) acknowledge(fn, `CloudFormation-Validate::${rule}`, emptyDefaults);
      // The same for cfn-lint itself, which reads the template's metadata.
      cfn.addMetadata('cfn-lint', { config: { ignore_checks: ['E1150', 'E3031'], comment: emptyDefaults } });
      const param = configParameters[i];
      const hasConfig = notEmpty(`Has${HOOKS[i].constructId}Config`, param.valueAsString);
      fn.addEnvironment(
        'GREENLIGHT_CONFIG_PARAMETER',
        Fn.conditionIf(hasConfig.logicalId, param.valueAsString, Aws.NO_VALUE).toString(),
      );
      // A version is published when the code's location or the configuration revision changes.
      const versionResource = fn.currentVersion.node.defaultChild as lambda.CfnVersion;
      versionResource.description = Fn.join(' ', [
        `Greenlight ${version},`,
        keyPrefix.valueAsString,
        'configuration revision',
        configRevision.valueAsString,
      ]);
    });

    // kms:Decrypt on the keys given, only when some are.
    const decrypt = new iam.Policy(this, 'DecryptionKeys', {
      statements: [
        new iam.PolicyStatement({
          sid: 'DecryptConfigurationAndSecrets',
          actions: ['kms:Decrypt'],
          resources: keyArns.valueAsList,
        }),
      ],
      roles: this.hooks.functions.map((fn) => fn.role as iam.IRole),
    });
    (decrypt.node.defaultChild as CfnResource).cfnOptions.condition = hasKeys;

    for (const alarm of this.hooks.monitoring.alarms) {
      const cfn = alarm.node.defaultChild as cloudwatch.CfnAlarm;
      const topic = Fn.conditionIf(hasAlarmTopic.logicalId, [alarmTopicArn.valueAsString], Aws.NO_VALUE);
      cfn.alarmActions = topic as unknown as string[];
      cfn.okActions = topic as unknown as string[];
      acknowledge(
        alarm,
        'CloudFormation-Validate::W1030',
        'The alarm actions name AlarmTopicArn only when it is given (Fn::If HasAlarmTopic); the check reads the empty default.',
      );
    }

    HOOKS.forEach((spec, i) => {
      new CfnOutput(this, spec.outputName, {
        description: `ARN of the live alias of Greenlight's ${spec.binary} function (HookTargetArn)`,
        value: this.hooks.aliases[i].functionArn,
      });
    });
    new CfnOutput(this, INVOKE_ROLE_OUTPUT, {
      description: 'ARN of the role ECS assumes to invoke the hooks (RoleArn of each lifecycle hook)',
      value: this.hooks.invokeRole.roleArn,
    });
    new CfnOutput(this, 'FailedInvocationsQueueUrl', {
      description: 'Asynchronous invocations that failed after retries (CodeDeploy hooks and their continuations)',
      value: this.hooks.failedInvocations.queueUrl,
    });
    new CfnOutput(this, 'DashboardName', {
      description: "The CloudWatch dashboard of the gates' decisions",
      value: this.hooks.monitoring.dashboard.dashboardName,
    });
  }
}
