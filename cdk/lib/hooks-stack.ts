/**
 * The stack a platform team deploys once per account and region: the four hooks (each with a
 * `live` alias), the role ECS invokes them with, the failed-invocations queue, alarms, a
 * dashboard and saved queries, with the aliases' ARNs as outputs (for ecspresso's
 * `cfn_output`); with `approvals`, the approval endpoint and its URL as an output.
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { GreenlightHooks, type GreenlightHooksProps } from './greenlight-hooks';
import { HOOKS, INVOKE_ROLE_OUTPUT } from './hooks';
import { acknowledge } from './nag';

export interface GreenlightHooksStackProps extends StackProps, GreenlightHooksProps {
  /**
   * An existing VPC to run the functions in, by id (with `subnetIds`): nothing is looked up,
   * so synthesis needs no credentials. Ignored when `vpc` is given. @default - no VPC
   */
  readonly vpcId?: string;
  /** The subnets of `vpcId` the functions run in: private subnets with a route to the AWS APIs. */
  readonly subnetIds?: string[];
  /**
   * Security groups of the functions in `vpcId`. @default - one created, allowing all
   * outbound traffic and no inbound
   */
  readonly securityGroupIds?: string[];
  /** KMS keys, by ARN, of SecureString parameters and secrets the checks read (added to `decryptionKeys`). */
  readonly decryptionKeyArns?: string[];
  /** An SNS topic, by ARN, the alarms notify (when `alarmTopic` is not given). */
  readonly alarmTopicArn?: string;
}

export class GreenlightHooksStack extends Stack {
  public readonly hooks: GreenlightHooks;
  /** The security group created for the functions, when they run in a VPC without security groups given. */
  public readonly securityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: GreenlightHooksStackProps = {}) {
    super(scope, id, props);

    let network: Pick<GreenlightHooksProps, 'vpc' | 'vpcSubnets' | 'securityGroups'> = {};
    if (props.vpc === undefined && (props.vpcId !== undefined || props.subnetIds !== undefined || props.securityGroupIds !== undefined)) {
      if (!props.vpcId || !props.subnetIds || props.subnetIds.length === 0) {
        throw new Error('a VPC needs both vpcId and subnetIds (and optionally securityGroupIds)');
      }
      if (!/^vpc-([0-9a-f]{8}|[0-9a-f]{17})$/.test(props.vpcId)) throw new Error(`vpcId "${props.vpcId}" is not a VPC id (vpc-…)`);
      for (const s of props.subnetIds) if (!/^subnet-([0-9a-f]{8}|[0-9a-f]{17})$/.test(s)) throw new Error(`"${s}" is not a subnet id (subnet-…)`);
      for (const g of props.securityGroupIds ?? []) if (!/^sg-([0-9a-f]{8}|[0-9a-f]{17})$/.test(g)) throw new Error(`"${g}" is not a security group id (sg-…)`);
      // Imported by id, not looked up: `cdk synth` stays offline. The availability zones are
      // not needed, because the subnets are named.
      const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', { vpcId: props.vpcId, availabilityZones: ['-'] });
      const subnets = props.subnetIds.map((s, i) => {
        const subnet = ec2.Subnet.fromSubnetId(this, `Subnet${i + 1}`, s);
        acknowledge(
          subnet,
          '@aws-cdk/aws-ec2:noSubnetRouteTableId',
          'The functions are only placed in the subnet; nothing reads its route table.',
        );
        return subnet;
      });
      let securityGroups: ec2.ISecurityGroup[];
      if (props.securityGroupIds && props.securityGroupIds.length > 0) {
        securityGroups = props.securityGroupIds.map((g, i) =>
          ec2.SecurityGroup.fromSecurityGroupId(this, `SecurityGroup${i + 1}`, g, { mutable: false }),
        );
      } else {
        this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
          vpc,
          description: 'Greenlight functions: outbound to the endpoints their checks probe and to the AWS APIs, no inbound',
          allowAllOutbound: true,
        });
        securityGroups = [this.securityGroup];
      }
      network = { vpc, vpcSubnets: { subnets }, securityGroups };
    }

    const keys = (props.decryptionKeyArns ?? []).map((arn, i) => {
      if (!/^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)\/.+$/.test(arn)) {
        throw new Error(`decryptionKeyArns: "${arn}" is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)`);
      }
      return kms.Key.fromKeyArn(this, `DecryptionKey${i + 1}`, arn);
    });
    let alarmTopic = props.alarmTopic;
    if (!alarmTopic && props.alarmTopicArn) {
      if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$/.test(props.alarmTopicArn)) {
        throw new Error(`alarmTopicArn "${props.alarmTopicArn}" is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)`);
      }
      alarmTopic = sns.Topic.fromTopicArn(this, 'AlarmTopic', props.alarmTopicArn);
    }

    this.hooks = new GreenlightHooks(this, 'Hooks', {
      ...props,
      ...network,
      decryptionKeys: [...(props.decryptionKeys ?? []), ...keys],
      alarmTopic,
    });

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
    if (this.hooks.approvalsUrl) {
      new CfnOutput(this, 'ApprovalsUrl', {
        description: "The approvals endpoint's URL; Slack's Interactivity Request URL is this followed by `slack`",
        value: this.hooks.approvalsUrl.url,
      });
    }
  }
}
