import * as fs from 'node:fs';
import * as path from 'node:path';
/**
 * cdk-nag's AWS Solutions checks on every stack the app can build, and on the construct in a
 * user's stack: no finding is left unacknowledged, each acknowledgment has a reason, and no
 * IAM statement allows a change on every resource.
 */
import { Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import {
  EcsBlueGreenExampleStack,
  GreenlightHooks,
  GreenlightHooksStack,
  GreenlightServiceHooks,
  LambdaCanaryExampleStack,
  ReleaseStack,
} from '../lib';
import { acknowledgments, allStatements, isReadOnly, nagFindings, testApp } from './helpers';

function stacks(): Record<string, Stack> {
  const app = testApp();
  const net = new Stack(app, 'net');
  const vpc = new ec2.Vpc(net, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    restrictDefaultSecurityGroup: false,
  });
  const keys = new Stack(app, 'keys');
  const key = new kms.Key(keys, 'Config', { enableKeyRotation: true });

  // A user's own stack with a service and the construct, functions imported by prefix.
  const user = new Stack(app, 'user');
  const cluster = new ecs.Cluster(user, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
  const task = new ecs.FargateTaskDefinition(user, 'Task');
  task.addContainer('web', {
    image: ecs.ContainerImage.fromRegistry('public.ecr.aws/nginx/nginx:stable'),
    logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'web' }),
  });
  const service = new ecs.FargateService(user, 'Service', {
    cluster,
    taskDefinition: task,
    minHealthyPercent: 100,
    deploymentStrategy: ecs.DeploymentStrategy.LINEAR,
    linearConfiguration: { stepPercent: 20, stepBakeTime: Duration.minutes(2) },
  });
  Validations.of(service).acknowledge({
    id: '@aws-cdk/aws-ecs:shouldUseCircuitBreaker',
    reason: "The user's service: deployments are stopped by Greenlight's hooks and alarms.",
  });
  new GreenlightServiceHooks(user, 'Greenlight', {
    service,
    functions: GreenlightHooks.fromPrefix(user, 'GreenlightFunctions'),
    config: { checks: { health: { type: 'http', url: 'http://svc.internal/health' } } },
  });

  return {
    hooks: new GreenlightHooksStack(app, 'greenlight-hooks'),
    hooksWithEverything: new GreenlightHooksStack(app, 'greenlight-hooks-full', {
      prefix: 'full',
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      decryptionKeys: [key],
      codeDeployApplications: ['shop', 'billing'],
      migrations: {
        taskDefinitionFamilies: ['shop-migrate'],
        taskRoleArns: ['arn:aws:iam::123456789012:role/shop-migrate'],
      },
      functions: { beforeInstall: { configParameterName: 'elsewhere/config' } },
    }),
    hooksFromTheCommandLine: new GreenlightHooksStack(app, 'greenlight-hooks-cli', {
      prefix: 'cli',
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
      configFile: JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'examples', 'gates.json'), 'utf8')),
      alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:alarms',
      decryptionKeyArns: ['arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
    }),
    hooksWithMetricSources: new GreenlightHooksStack(app, 'greenlight-hooks-metrics', {
      prefix: 'metrics',
      prometheusWorkspaceArns: ['arn:aws:aps:us-east-1:123456789012:workspace/ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789'],
      cloudWatchPromQL: true,
      metricRoleArns: ['arn:aws:iam::210987654321:role/greenlight-query'],
      metricSecretArns: [
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:observability/datadog-AbCdEf',
        'arn:aws:ssm:us-east-1:123456789012:parameter/observability/prometheus-token',
      ],
    }),
    hooksWithApprovals: new GreenlightHooksStack(app, 'greenlight-hooks-approvals', {
      prefix: 'approvals',
      approvals: {},
    }),
    hooksWithApprovalsInAVpc: new GreenlightHooksStack(app, 'greenlight-hooks-approvals-vpc', {
      prefix: 'approvals-vpc',
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      decryptionKeys: [key],
      configFile: JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'examples', 'gates.json'), 'utf8')),
      functions: { afterAllowTraffic: {} },
      approvals: {
        slackSigningSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:greenlight/slack-AbCdEf',
        slackBotTokenSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:chatops/slack-bot-XyZ123',
        retention: Duration.days(730),
        reservedConcurrency: 10,
      },
    }),
    release: new ReleaseStack(app, 'greenlight'),
    ecsExample: new EcsBlueGreenExampleStack(app, 'greenlight-example-ecs'),
    canaryExample: new LambdaCanaryExampleStack(app, 'greenlight-example-lambda-canary'),
    user,
  };
}

describe.each(Object.entries(stacks()))('%s', (_name, stack) => {
  const template = Template.fromStack(stack);

  test('no unacknowledged cdk-nag AwsSolutions finding, error or warning', () => {
    expect(nagFindings(stack)).toEqual([]);
  });

  test('no errors or warnings from synthesis', () => {
    expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('every acknowledgment gives a reason', () => {
    for (const a of acknowledgments(stack)) {
      expect(a.reason.trim().length).toBeGreaterThan(30);
    }
  });

  test('no IAM statement allows a change on every resource, nor a wildcard action', () => {
    for (const s of allStatements(template)) {
      expect(s.Action.filter((a) => a.includes('*'))).toEqual([]);
      if (s.Resource.includes('*')) {
        expect({ where: s.where, sid: s.Sid, mutating: s.Action.filter((a) => !isReadOnly(a)) }).toEqual({
          where: s.where,
          sid: s.Sid,
          mutating: [],
        });
      }
    }
  });
});

describe('the checks themselves', () => {
  test('an unacknowledged wildcard is found, and an acknowledged one is not', () => {
    const stack = new Stack(testApp(), 'probe');
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['sns:Publish'], resources: ['*'] }));
    expect(nagFindings(stack)).toEqual(['AwsSolutions-IAM5[Resource::*] error probe/Role/DefaultPolicy/Resource']);
    Validations.of(role).acknowledge({ id: 'AwsSolutions-IAM5[Resource::*]', reason: 'probe' });
    expect(nagFindings(stack)).toEqual([]);
    const [statement] = allStatements(Template.fromStack(stack));
    expect(statement.Action.filter((a) => !isReadOnly(a))).toEqual(['sns:Publish']);
  });

  test('read-only means Describe, List, Get and BatchGet', () => {
    expect(
      ['ecs:DescribeTasks', 'ecs:ListTasks', 'ssm:GetParameter', 'codedeploy:BatchGetDeployments'].every(isReadOnly),
    ).toBe(true);
    expect(['ecs:RunTask', 'iam:PassRole', 'logs:PutLogEvents', 'ecs:Describe*'].some(isReadOnly)).toBe(false);
  });
});
