import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as sns from 'aws-cdk-lib/aws-sns';
import { GreenlightCode, GreenlightHooks, GreenlightHooksStack, type GreenlightHooksStackProps } from '../lib';
import { allStatements, flat, isReadOnly, logicalIdOf, statementsOf, testApp } from './helpers';

const NAMES = ['before-install', 'after-install', 'before-allow-traffic', 'after-allow-traffic'];
const IDS = ['BeforeInstall', 'AfterInstall', 'BeforeAllowTraffic', 'AfterAllowTraffic'];
const ARN = (service: string, rest: string) => `arn:<AWS::Partition>:${service}:<AWS::Region>:<AWS::AccountId>:${rest}`;

function synth(props: GreenlightHooksStackProps = {}): { stack: GreenlightHooksStack; template: Template } {
  const stack = new GreenlightHooksStack(testApp(), 'greenlight-hooks', props);
  return { stack, template: Template.fromStack(stack) };
}

describe('the hooks stack', () => {
  const { template } = synth();
  const json = template.toJSON();

  test('outputs the four function ARNs and the invoke role for cfn_output', () => {
    expect(Object.keys(json.Outputs).sort()).toEqual(
      [
        'AfterAllowTrafficHookArn',
        'AfterInstallHookArn',
        'BeforeAllowTrafficHookArn',
        'BeforeInstallHookArn',
        'EcsBlueGreenDeployRoleArn',
        'FailedInvocationsQueueUrl',
        'DashboardName',
      ].sort(),
    );
    // The hooks name each function's `live` alias.
    IDS.forEach((id) => {
      const alias = logicalIdOf(template, 'AWS::Lambda::Alias', `Hooks${id}Live`);
      expect(json.Outputs[`${id}HookArn`].Value).toEqual({ Ref: alias });
    });
    const role = logicalIdOf(template, 'AWS::IAM::Role', 'HooksEcsInvokeRole');
    expect(json.Outputs.EcsBlueGreenDeployRoleArn.Value).toEqual({ 'Fn::GetAtt': [role, 'Arn'] });
  });

  test('four arm64 provided.al2023 functions with JSON logs in their own log groups', () => {
    template.resourceCountIs('AWS::Lambda::Function', 4);
    NAMES.forEach((name, i) => {
      const logs = logicalIdOf(template, 'AWS::Logs::LogGroup', `Hooks${IDS[i]}Logs`);
      const role = logicalIdOf(template, 'AWS::IAM::Role', `Hooks${IDS[i]}Role`);
      template.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: `greenlight-${name}`,
        Runtime: 'provided.al2023',
        Handler: 'bootstrap',
        Architectures: ['arm64'],
        MemorySize: 256,
        Timeout: 300,
        LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: logs } },
        Role: { 'Fn::GetAtt': [role, 'Arn'] },
        Environment: { Variables: { GREENLIGHT_METRICS_NAMESPACE: 'Greenlight' } },
        VpcConfig: Match.absent(),
      });
    });
  });

  test('log groups have a retention and go with cdk destroy', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', 4);
    for (const name of NAMES) {
      template.hasResource('AWS::Logs::LogGroup', {
        Properties: { LogGroupName: `/aws/lambda/greenlight-${name}`, RetentionInDays: 30 },
        DeletionPolicy: 'Delete',
        UpdateReplacePolicy: 'Delete',
      });
    }
  });

  test("each function's role: its log group, invoking itself, and the checks policy", () => {
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    NAMES.forEach((name, i) => {
      const role = logicalIdOf(template, 'AWS::IAM::Role', `Hooks${IDS[i]}Role`);
      template.hasResourceProperties('AWS::IAM::Role', {
        AssumeRolePolicyDocument: {
          Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }],
        },
        ManagedPolicyArns: [{ Ref: policy }],
      });
      const logs = logicalIdOf(template, 'AWS::Logs::LogGroup', `Hooks${IDS[i]}Logs`);
      const inline = logicalIdOf(template, 'AWS::IAM::Policy', `Hooks${IDS[i]}RoleDefaultPolicy`);
      expect(json.Resources[inline].Properties.Roles).toEqual([{ Ref: role }]);
      expect(statementsOf(template, inline)).toEqual([
        { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: [`<${logs}.Arn>`] },
        {
          Sid: 'InvokeItself',
          Effect: 'Allow',
          Action: ['lambda:InvokeFunction'],
          Resource: [ARN('lambda', `function:greenlight-${name}`), ARN('lambda', `function:greenlight-${name}:*`)],
        },
        {
          Effect: 'Allow',
          Action: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'],
          Resource: [`<${logicalIdOf(template, 'AWS::SQS::Queue', 'HooksFailedInvocations')}.Arn>`],
        },
      ]);
    });
  });

  test('the checks policy, statement by statement', () => {
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    expect(statementsOf(template, policy)).toEqual([
      {
        Sid: 'ReadEcsDeployments',
        Effect: 'Allow',
        Action: [
          'ecs:DescribeServiceDeployments',
          'ecs:DescribeServiceRevisions',
          'ecs:DescribeServices',
          'ecs:DescribeTasks',
        ],
        Resource: [
          ARN('ecs', 'service-deployment/*'),
          ARN('ecs', 'service-revision/*'),
          ARN('ecs', 'service/*'),
          ARN('ecs', 'task/*'),
        ],
      },
      {
        Sid: 'ReadEcsUnscoped',
        Effect: 'Allow',
        Action: ['ecs:DescribeTaskDefinition', 'ecs:ListTasks'],
        Resource: ['*'],
      },
      {
        Sid: 'ReadTargetHealth',
        Effect: 'Allow',
        Action: ['elasticloadbalancing:DescribeTargetGroups', 'elasticloadbalancing:DescribeTargetHealth'],
        Resource: ['*'],
      },
      { Sid: 'ReadMetrics', Effect: 'Allow', Action: ['cloudwatch:GetMetricData'], Resource: ['*'] },
      {
        Sid: 'ReadAlarms',
        Effect: 'Allow',
        Action: ['cloudwatch:DescribeAlarms'],
        Resource: [ARN('cloudwatch', 'alarm:*')],
      },
      {
        Sid: 'ReadImageScanFindings',
        Effect: 'Allow',
        Action: ['ecr:DescribeImageScanFindings'],
        Resource: [ARN('ecr', 'repository/*')],
      },
      {
        Sid: 'ReadCodeDeployDeployments',
        Effect: 'Allow',
        Action: ['codedeploy:GetDeployment', 'codedeploy:GetDeploymentGroup'],
        Resource: [ARN('codedeploy', 'deploymentgroup:*/*')],
      },
      {
        Sid: 'ReadCodeDeployTargets',
        Effect: 'Allow',
        Action: ['codedeploy:GetDeploymentTarget', 'codedeploy:ListDeploymentTargets'],
        Resource: ['*'],
      },
      {
        Sid: 'ReportToCodeDeploy',
        Effect: 'Allow',
        Action: ['codedeploy:PutLifecycleEventHookExecutionStatus'],
        Resource: [ARN('codedeploy', 'deploymentgroup:*/*')],
      },
      {
        Sid: 'ReadConfigurationAndSecrets',
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'ssm:GetParameter'],
        Resource: [ARN('secretsmanager', 'secret:greenlight/*'), ARN('ssm', 'parameter/greenlight/*')],
      },
      { Sid: 'PublishNotifications', Effect: 'Allow', Action: ['sns:Publish'], Resource: [ARN('sns', 'greenlight-*')] },
    ]);
  });

  test('the role ECS invokes the hooks with: trusts ECS for this account, invokes the four functions only', () => {
    const role = logicalIdOf(template, 'AWS::IAM::Role', 'HooksEcsInvokeRole');
    expect(json.Resources[role].Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { Service: 'ecs.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      },
    ]);
    expect(flat(json.Resources[role].Properties.RoleName)).toBe('greenlight-ecs-hooks-<AWS::Region>');
    expect(json.Resources[role].Properties.ManagedPolicyArns).toBeUndefined();
    const inline = logicalIdOf(template, 'AWS::IAM::Policy', 'HooksEcsInvokeRoleDefaultPolicy');
    expect(json.Resources[inline].Properties.Roles).toEqual([{ Ref: role }]);
    expect(statementsOf(template, inline)).toEqual([
      {
        Sid: 'InvokeGreenlightHooks',
        Effect: 'Allow',
        Action: ['lambda:InvokeFunction'],
        // Each function, its `live` alias and the versions a service may be pinned to.
        Resource: IDS.flatMap((id) => {
          const fn = logicalIdOf(template, 'AWS::Lambda::Function', `Hooks${id}`);
          return [`<${fn}.Arn>`, `<${fn}.Arn>:*`];
        }).sort(),
      },
    ]);
  });

  test('no IAM statement allows a change on every resource', () => {
    for (const s of allStatements(template)) {
      expect(s.Action.filter((a) => a.includes('*'))).toEqual([]);
      if (s.Resource.includes('*')) expect(s.Action.filter((a) => !isReadOnly(a))).toEqual([]);
    }
  });
});

describe('options', () => {
  test('configuration in the environment, inline or by SSM parameter', () => {
    const { template } = synth({
      functions: {
        beforeAllowTraffic: { config: { checks: { health: { type: 'http', url: 'http://example/health' } } } },
        afterAllowTraffic: { configParameterName: '/greenlight/after-allow-traffic' },
        afterInstall: { configParameterName: '/shop/greenlight', timeout: Duration.minutes(15), memorySize: 512 },
      },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'greenlight-before-allow-traffic',
      Environment: {
        Variables: { GREENLIGHT_CONFIG: '{"checks":{"health":{"type":"http","url":"http://example/health"}}}' },
      },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'greenlight-after-allow-traffic',
      Environment: { Variables: { GREENLIGHT_CONFIG_PARAMETER: '/greenlight/after-allow-traffic' } },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'greenlight-after-install',
      Timeout: 900,
      MemorySize: 512,
      Environment: { Variables: { GREENLIGHT_CONFIG_PARAMETER: '/shop/greenlight' } },
    });
    // Under the prefix: covered by the checks policy. Elsewhere: granted to that function.
    const afterAllow = logicalIdOf(template, 'AWS::IAM::Policy', 'HooksAfterAllowTrafficRoleDefaultPolicy');
    expect(statementsOf(template, afterAllow).map((s) => s.Sid)).not.toContain('ReadConfigParameter');
    const afterInstall = logicalIdOf(template, 'AWS::IAM::Policy', 'HooksAfterInstallRoleDefaultPolicy');
    expect(statementsOf(template, afterInstall)).toContainEqual({
      Sid: 'ReadConfigParameter',
      Effect: 'Allow',
      Action: ['ssm:GetParameter'],
      Resource: [ARN('ssm', 'parameter/shop/greenlight')],
    });
  });

  test('config and configParameterName together are refused', () => {
    expect(() => synth({ functions: { beforeInstall: { config: {}, configParameterName: 'greenlight/x' } } })).toThrow(
      /give one of config, configParameterName or an entry in configFile/,
    );
  });

  test('migrations: run only the given families, pass only the given roles to ECS tasks', () => {
    const { template } = synth({
      migrations: {
        taskDefinitionFamilies: ['shop-migrate'],
        taskRoleArns: ['arn:aws:iam::123456789012:role/shop-migrate-task', 'arn:aws:iam::123456789012:role/shop-exec'],
        clusters: ['shop'],
        logGroupNames: ['/ecs/shop-migrate'],
      },
    });
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    const statements = statementsOf(template, policy);
    const run = statements.find((st) => st.Sid === 'RunMigrationTasks');
    expect(run?.Action).toEqual(['ecs:RunTask']);
    expect(run?.Resource).toEqual([ARN('ecs', 'task-definition/shop-migrate:*')]);
    const clusters = (run?.Condition as { ArnEquals: Record<string, unknown[]> }).ArnEquals['ecs:cluster'];
    expect(clusters.map(flat)).toEqual([ARN('ecs', 'cluster/shop')]);
    expect(statements).toContainEqual({
      Sid: 'StopMigrationTasks',
      Effect: 'Allow',
      Action: ['ecs:StopTask'],
      Resource: [ARN('ecs', 'task/shop/*')],
    });
    expect(statements).toContainEqual({
      Sid: 'ReadMigrationTasks',
      Effect: 'Allow',
      Action: ['ecs:DescribeTaskSets'],
      Resource: [ARN('ecs', 'task-set/*')],
    });
    expect(statements).toContainEqual({
      Sid: 'ReadMigrationTaskLogs',
      Effect: 'Allow',
      Action: ['logs:GetLogEvents'],
      Resource: [ARN('logs', 'log-group:/ecs/shop-migrate:log-stream:*')],
    });
    expect(statements).toContainEqual({
      Sid: 'PassMigrationTaskRoles',
      Effect: 'Allow',
      Action: ['iam:PassRole'],
      Resource: ['arn:aws:iam::123456789012:role/shop-exec', 'arn:aws:iam::123456789012:role/shop-migrate-task'],
      Condition: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    });
  });

  test('migration files in S3: the buckets given, listed and read', () => {
    const { template } = synth({ migrationSourceBuckets: ['shop-releases'] });
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    const files = statementsOf(template, policy).find((st) => st.Sid === 'ReadMigrationFiles');
    expect(files?.Action).toEqual(['s3:GetObject', 's3:ListBucket']);
    expect((files?.Resource as unknown[]).map(flat)).toEqual([
      'arn:<AWS::Partition>:s3:::shop-releases',
      'arn:<AWS::Partition>:s3:::shop-releases/*',
    ]);
    expect((files?.Action as string[]).every(isReadOnly)).toBe(true);
  });

  test('database secrets given are readable, and only those', () => {
    const secret = 'arn:aws:secretsmanager:us-west-2:123456789012:secret:rds!db-0a1b2c3d-AbCdEf';
    const { template } = synth({ databaseSecretArns: [secret] });
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    expect(statementsOf(template, policy)).toContainEqual({
      Sid: 'ReadDatabaseSecrets',
      Effect: 'Allow',
      Action: ['secretsmanager:GetSecretValue'],
      Resource: [secret],
    });
    const none = statementsOf(synth().template, policy).find((st) => st.Sid === 'ReadDatabaseSecrets');
    expect(none).toBeUndefined();
  });

  describe('metric sources beyond CloudWatch', () => {
    const WORKSPACE = 'arn:aws:aps:us-east-1:123456789012:workspace/ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789';
    const OTHER_WORKSPACE = 'arn:aws:aps:eu-west-1:210987654321:workspace/ws-9f8e7d6c-5b4a-3210-fedc-ba9876543210';
    const ROLE = 'arn:aws:iam::210987654321:role/observability/greenlight-query';
    const DATADOG = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:observability/datadog-AbCdEf';
    const MIMIR = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:observability/mimir-token-XyZ123';
    const PARAMETER = 'arn:aws:ssm:us-east-1:123456789012:parameter/observability/prometheus-password';
    const SIDS = [
      'QueryPrometheusWorkspaces',
      'QueryCloudWatchPromQL',
      'AssumeMetricRoles',
      'ReadMetricSecrets',
      'ReadMetricParameters',
    ];
    const checksStatements = (props: GreenlightHooksStackProps) => {
      const { template } = synth(props);
      return statementsOf(template, logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy'));
    };
    const bySid = (statements: ReturnType<typeof checksStatements>, sid: string) =>
      statements.filter((s) => s.Sid === sid);

    test('unset: none of their permissions, in any policy', () => {
      const { template } = synth();
      const statements = allStatements(template);
      expect(statements.filter((s) => s.Sid !== undefined && SIDS.includes(s.Sid))).toEqual([]);
      const actions = statements.flatMap((s) => s.Action);
      for (const action of ['aps:QueryMetrics', 'cloudwatch:ListMetrics', 'sts:AssumeRole']) {
        expect(actions).not.toContain(action);
      }
      // Secrets and parameters: only those named with the prefix.
      for (const s of statements.filter((st) => st.Action.some((a) => /^(secretsmanager|ssm):Get/.test(a)))) {
        expect(s.Sid).toBe('ReadConfigurationAndSecrets');
      }
      // Empty lists and `false` are the same as unset.
      const empty = checksStatements({
        prometheusWorkspaceArns: [],
        cloudWatchPromQL: false,
        metricRoleArns: [],
        metricSecretArns: [],
      });
      expect(empty.filter((s) => s.Sid !== undefined && SIDS.includes(s.Sid))).toEqual([]);
    });

    test('prometheusWorkspaceArns: aps:QueryMetrics on exactly those workspaces', () => {
      const statements = checksStatements({ prometheusWorkspaceArns: [WORKSPACE, OTHER_WORKSPACE] });
      expect(bySid(statements, 'QueryPrometheusWorkspaces')).toEqual([
        {
          Sid: 'QueryPrometheusWorkspaces',
          Effect: 'Allow',
          Action: ['aps:QueryMetrics'],
          Resource: [OTHER_WORKSPACE, WORKSPACE],
        },
      ]);
      expect(statements.flatMap((s) => s.Action).filter((a) => a.startsWith('aps:'))).toEqual(['aps:QueryMetrics']);
    });

    test("cloudWatchPromQL: the two actions AWS documents for CloudWatch's PromQL API, which take no resource", () => {
      const statements = checksStatements({ cloudWatchPromQL: true });
      expect(bySid(statements, 'QueryCloudWatchPromQL')).toEqual([
        {
          Sid: 'QueryCloudWatchPromQL',
          Effect: 'Allow',
          Action: ['cloudwatch:GetMetricData', 'cloudwatch:ListMetrics'],
          Resource: ['*'],
        },
      ]);
      expect(statements.filter((s) => s.Action.includes('cloudwatch:ListMetrics'))).toHaveLength(1);
    });

    test('metricRoleArns: sts:AssumeRole on exactly those roles', () => {
      const statements = checksStatements({ metricRoleArns: [ROLE] });
      expect(bySid(statements, 'AssumeMetricRoles')).toEqual([
        { Sid: 'AssumeMetricRoles', Effect: 'Allow', Action: ['sts:AssumeRole'], Resource: [ROLE] },
      ]);
      expect(statements.filter((s) => s.Action.includes('sts:AssumeRole'))).toHaveLength(1);
    });

    test('metricSecretArns: each secret and parameter readable with its own action, and only those', () => {
      const statements = checksStatements({ metricSecretArns: [DATADOG, PARAMETER, MIMIR] });
      expect(bySid(statements, 'ReadMetricSecrets')).toEqual([
        {
          Sid: 'ReadMetricSecrets',
          Effect: 'Allow',
          Action: ['secretsmanager:GetSecretValue'],
          Resource: [DATADOG, MIMIR],
        },
      ]);
      expect(bySid(statements, 'ReadMetricParameters')).toEqual([
        { Sid: 'ReadMetricParameters', Effect: 'Allow', Action: ['ssm:GetParameter'], Resource: [PARAMETER] },
      ]);
      // Secrets alone: no parameter statement, and the other way round.
      expect(bySid(checksStatements({ metricSecretArns: [DATADOG] }), 'ReadMetricParameters')).toEqual([]);
      expect(bySid(checksStatements({ metricSecretArns: [PARAMETER] }), 'ReadMetricSecrets')).toEqual([]);
    });

    test('granted to the four functions through the checks policy, and to nothing else', () => {
      const { template } = synth({
        prometheusWorkspaceArns: [WORKSPACE],
        cloudWatchPromQL: true,
        metricRoleArns: [ROLE],
        metricSecretArns: [DATADOG, PARAMETER],
      });
      const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
      const found = allStatements(template).filter((s) => s.Sid !== undefined && SIDS.includes(s.Sid));
      expect(found.map((s) => s.where)).toEqual(SIDS.map(() => policy));
      expect(found.map((s) => s.Sid)).toEqual(SIDS);
      IDS.forEach((id) => {
        const role = template.toJSON().Resources[logicalIdOf(template, 'AWS::IAM::Role', `Hooks${id}Role`)];
        expect(role.Properties.ManagedPolicyArns).toEqual([{ Ref: policy }]);
      });
    });

    test.each([
      ['prometheusWorkspaceArns', 'ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789'],
      ['prometheusWorkspaceArns', 'arn:aws:aps:us-east-1:123456789012:workspace/*'],
      ['prometheusWorkspaceArns', 'arn:aws:aps:us-east-1:123456789012:rulegroupsnamespace/ws-0a1b/rules'],
      ['prometheusWorkspaceArns', 'https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0a1b2c3d'],
      ['prometheusWorkspaceArns', 'arn:aws:aps:us-east-1:1234:workspace/ws-0a1b2c3d'],
      ['metricRoleArns', 'arn:aws:iam::210987654321:role/*'],
      ['metricRoleArns', 'arn:aws:iam::210987654321:user/greenlight'],
      ['metricRoleArns', 'greenlight-query'],
      ['metricSecretArns', '*'],
      ['metricSecretArns', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:*'],
      ['metricSecretArns', 'observability/datadog'],
      ['metricSecretArns', '/observability/prometheus-password'],
      ['metricSecretArns', 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
    ] as const)('%s: %j fails synthesis naming the setting', (key, value) => {
      expect(() => synth({ [key]: [value] })).toThrow(`${key}: "${value}" is not a`);
    });

    test('the messages say what is expected', () => {
      expect(() => synth({ prometheusWorkspaceArns: ['ws-1'] })).toThrow(
        'prometheusWorkspaceArns: "ws-1" is not an Amazon Managed Service for Prometheus workspace ARN (arn:aws:aps:REGION:ACCOUNT:workspace/ws-…)',
      );
      expect(() => synth({ metricRoleArns: ['r'] })).toThrow(
        'metricRoleArns: "r" is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)',
      );
      expect(() => synth({ metricSecretArns: ['s'] })).toThrow(
        'metricSecretArns: "s" is not a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf) or an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)',
      );
    });

    test('other partitions are accepted', () => {
      const statements = checksStatements({
        prometheusWorkspaceArns: ['arn:aws-cn:aps:cn-north-1:123456789012:workspace/ws-0a1b2c3d'],
        metricRoleArns: ['arn:aws-us-gov:iam::123456789012:role/query'],
        metricSecretArns: ['arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:rds!db-0a1b-AbCdEf'],
      });
      expect(bySid(statements, 'QueryPrometheusWorkspaces')[0].Resource).toEqual([
        'arn:aws-cn:aps:cn-north-1:123456789012:workspace/ws-0a1b2c3d',
      ]);
      expect(bySid(statements, 'AssumeMetricRoles')[0].Resource).toEqual([
        'arn:aws-us-gov:iam::123456789012:role/query',
      ]);
      expect(bySid(statements, 'ReadMetricSecrets')[0].Resource).toEqual([
        'arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:rds!db-0a1b-AbCdEf',
      ]);
    });
  });

  test('without migrations, no task may be run or stopped and no role passed', () => {
    const { template } = synth();
    const actions = allStatements(template).flatMap((s) => s.Action);
    expect(actions).not.toContain('ecs:RunTask');
    expect(actions).not.toContain('ecs:StopTask');
    expect(actions).not.toContain('iam:PassRole');
  });

  test('CodeDeploy reports narrowed to named applications; topics given are added', () => {
    const app = testApp();
    const topics = new Stack(app, 'topics');
    const topic = new sns.Topic(topics, 'Deployments');
    const stack = new GreenlightHooksStack(app, 'greenlight-hooks', {
      codeDeployApplications: ['shop'],
      notificationTopics: [topic],
    });
    const template = Template.fromStack(stack);
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    const statements = statementsOf(template, policy);
    expect(statements.find((s) => s.Sid === 'ReportToCodeDeploy')?.Resource).toEqual([
      ARN('codedeploy', 'deploymentgroup:shop/*'),
    ]);
    expect(statements.find((s) => s.Sid === 'PublishNotifications')?.Resource).toHaveLength(2);
  });

  test('in a VPC: network interfaces within the account and region only', () => {
    const app = testApp();
    const net = new Stack(app, 'net');
    const vpc = new ec2.Vpc(net, 'Vpc', {
      natGateways: 0,
      subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
    const stack = new GreenlightHooksStack(app, 'greenlight-hooks', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      VpcConfig: Match.objectLike({ SubnetIds: Match.anyValue() }),
    });
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    expect(statementsOf(template, policy)).toContainEqual({
      Sid: 'ManageNetworkInterfaces',
      Effect: 'Allow',
      Action: [
        'ec2:AssignPrivateIpAddresses',
        'ec2:CreateNetworkInterface',
        'ec2:DeleteNetworkInterface',
        'ec2:UnassignPrivateIpAddresses',
      ],
      Resource: [ARN('ec2', '*/*')],
    });
    for (const s of allStatements(template)) {
      if (s.Resource.includes('*')) expect(s.Action.filter((a) => !isReadOnly(a))).toEqual([]);
    }
  });

  test('another prefix renames everything', () => {
    const { template } = synth({ prefix: 'shop-gates' });
    for (const name of NAMES) {
      template.hasResourceProperties('AWS::Lambda::Function', { FunctionName: `shop-gates-${name}` });
      template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: `/aws/lambda/shop-gates-${name}` });
    }
    const policy = logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    expect(statementsOf(template, policy).find((s) => s.Sid === 'PublishNotifications')?.Resource).toEqual([
      ARN('sns', 'shop-gates-*'),
    ]);
  });

  test.each(['', 'Greenlight', '1abc', 'abc-', 'a'.repeat(33), 'a_b'])('prefix %j is refused', (prefix) => {
    expect(() => synth({ prefix })).toThrow(/invalid prefix/);
  });

  test('prebuilt binaries from `cargo lambda build --release --arm64`', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'greenlight-lambda-'));
    for (const name of NAMES) {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, 'bootstrap'), '');
    }
    const { template } = synth({ code: GreenlightCode.fromBuildOutput(dir) });
    template.resourceCountIs('AWS::Lambda::Function', 4);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Architectures: ['arm64'],
      Handler: 'bootstrap',
    });
    fs.rmSync(path.join(dir, 'after-install'), { recursive: true });
    expect(() => synth({ code: GreenlightCode.fromBuildOutput(dir) })).toThrow(
      /after-install\/bootstrap does not exist/,
    );
    fs.rmSync(dir, { recursive: true });
  });

  test('GreenlightHooks.fromPrefix imports the live aliases by name, or a pinned version, or $LATEST', () => {
    const stack = new Stack(testApp(), 'user');
    const fns = GreenlightHooks.fromPrefix(stack, 'Greenlight', 'shop');
    expect(flat(stack.resolve(fns.beforeAllowTraffic.functionArn))).toBe(
      ARN('lambda', 'function:shop-before-allow-traffic:live'),
    );
    expect(flat(stack.resolve(fns.afterInstall.functionArn))).toBe(ARN('lambda', 'function:shop-after-install:live'));
    const pinned = GreenlightHooks.fromPrefix(stack, 'Pinned', 'shop', { qualifier: '7' });
    expect(flat(stack.resolve(pinned.afterInstall.functionArn))).toBe(ARN('lambda', 'function:shop-after-install:7'));
    const latest = GreenlightHooks.fromPrefix(stack, 'Latest', 'shop', { qualifier: null });
    expect(flat(stack.resolve(latest.afterInstall.functionArn))).toBe(ARN('lambda', 'function:shop-after-install'));
    expect(() => GreenlightHooks.fromPrefix(stack, 'Bad', 'shop', { qualifier: 'no:pe' })).toThrow(/invalid qualifier/);
  });
});
