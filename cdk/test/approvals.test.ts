/**
 * Approvals (`approvals`): the endpoint, its public URL, the store, the signing key, the
 * environment of the four hooks and the endpoint, their exact permissions, and the rule for
 * ECS PAUSE hooks. Off unless set.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import {
  type GreenlightApprovalsOptions,
  GreenlightHooks,
  GreenlightHooksStack,
  type GreenlightHooksStackProps,
} from '../lib';
import { allStatements, flat, logicalIdOf, statementsOf, testApp } from './helpers';

const IDS = ['BeforeInstall', 'AfterInstall', 'BeforeAllowTraffic', 'AfterAllowTraffic'];
const ARN = (service: string, rest: string) => `arn:<AWS::Partition>:${service}:<AWS::Region>:<AWS::AccountId>:${rest}`;
const SIGNING = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:greenlight/slack-signing-AbCdEf';
const BOT = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:chatops/slack-bot-XyZ123';

function synth(props: GreenlightHooksStackProps = {}): { stack: GreenlightHooksStack; template: Template } {
  const stack = new GreenlightHooksStack(testApp(), 'greenlight-hooks', props);
  return { stack, template: Template.fromStack(stack) };
}

/** The logical ids of the approval resources of a template. */
function ids(template: Template) {
  return {
    fn: logicalIdOf(template, 'AWS::Lambda::Function', 'HooksApprovals'),
    role: logicalIdOf(template, 'AWS::IAM::Role', 'HooksApprovalsRole'),
    rolePolicy: logicalIdOf(template, 'AWS::IAM::Policy', 'HooksApprovalsRoleDefaultPolicy'),
    logs: logicalIdOf(template, 'AWS::Logs::LogGroup', 'HooksApprovalsLogs'),
    url: logicalIdOf(template, 'AWS::Lambda::Url', 'HooksApprovals'),
    bucket: logicalIdOf(template, 'AWS::S3::Bucket', 'HooksApprovalStore'),
    key: logicalIdOf(template, 'AWS::SecretsManager::Secret', 'HooksApprovalKey'),
    queue: logicalIdOf(template, 'AWS::SQS::Queue', 'HooksFailedInvocations'),
    checks: logicalIdOf(template, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy'),
  };
}

function variablesOf(template: Template, logicalId: string): Record<string, unknown> {
  return template.toJSON().Resources[logicalId].Properties.Environment?.Variables ?? {};
}

/** Each resource's dependencies: Ref, Fn::GetAtt and DependsOn. */
function dependencies(template: Template): Map<string, Set<string>> {
  const resources = template.toJSON().Resources as Record<string, Record<string, unknown>>;
  const graph = new Map<string, Set<string>>();
  const walk = (node: unknown, into: Set<string>) => {
    if (Array.isArray(node)) node.forEach((n) => walk(n, into));
    else if (typeof node === 'object' && node !== null) {
      const o = node as Record<string, unknown>;
      if (typeof o.Ref === 'string' && o.Ref in resources) into.add(o.Ref);
      if (Array.isArray(o['Fn::GetAtt']) && (o['Fn::GetAtt'][0] as string) in resources)
        into.add(o['Fn::GetAtt'][0] as string);
      Object.values(o).forEach((v) => walk(v, into));
    }
  };
  for (const [id, r] of Object.entries(resources)) {
    const into = new Set<string>();
    walk(r.Properties, into);
    for (const d of (r.DependsOn as string[] | string | undefined) === undefined
      ? []
      : ([] as string[]).concat(r.DependsOn as string[]))
      into.add(d);
    graph.set(id, into);
  }
  return graph;
}

/** A cycle in the dependency graph, or undefined. */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'open') return [...path.slice(path.indexOf(id)), id];
    state.set(id, 'open');
    path.push(id);
    for (const d of graph.get(id) ?? []) {
      const cycle = visit(d);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of graph.keys()) {
    const cycle = visit(id);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Everything a resource depends on, directly or not. */
function closure(graph: Map<string, Set<string>>, id: string): Set<string> {
  const seen = new Set<string>();
  const stack = [id];
  while (stack.length > 0) {
    for (const d of graph.get(stack.pop() as string) ?? []) {
      if (!seen.has(d)) {
        seen.add(d);
        stack.push(d);
      }
    }
  }
  return seen;
}

const hookFunctions = (template: Template) =>
  IDS.map((id) => logicalIdOf(template, 'AWS::Lambda::Function', `Hooks${id}`));

describe('approvals off (the default)', () => {
  const { stack, template } = synth();
  const json = template.toJSON();

  test('no endpoint, URL, store, key, parameter or rule', () => {
    template.resourceCountIs('AWS::Lambda::Function', 4);
    template.resourceCountIs('AWS::Lambda::Url', 0);
    template.resourceCountIs('AWS::S3::Bucket', 0);
    template.resourceCountIs('AWS::SecretsManager::Secret', 0);
    template.resourceCountIs('AWS::Events::Rule', 0);
    expect(Object.keys(template.findResources('AWS::SSM::Parameter'))).toEqual([]);
    expect(json.Outputs.ApprovalsUrl).toBeUndefined();
    const hooks = stack.hooks;
    expect([hooks.approvalsFunction, hooks.approvalsUrl, hooks.approvalStore, hooks.approvalKey]).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    expect(hooks.pauseHooksRule).toBeUndefined();
    expect(hooks.approvalUrlParameter).toBeUndefined();
  });

  test('no GREENLIGHT_APPROVAL_* or Slack variable, and no approval permission', () => {
    for (const fn of hookFunctions(template)) {
      expect(Object.keys(variablesOf(template, fn)).filter((k) => /APPROVAL|SLACK/.test(k))).toEqual([]);
    }
    const actions = allStatements(template).flatMap((s) => s.Action);
    for (const a of ['s3:GetObject', 's3:PutObject', 'ecs:ContinueServiceDeployment']) expect(actions).not.toContain(a);
  });
});

describe('approvals on', () => {
  const { stack, template } = synth({ approvals: {} });
  const json = template.toJSON();
  const id = ids(template);

  test('the endpoint: arm64, JSON logs in its own log group, 30 s, reserved concurrency 5', () => {
    template.resourceCountIs('AWS::Lambda::Function', 5);
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'greenlight-approvals',
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Architectures: ['arm64'],
      MemorySize: 256,
      Timeout: 30,
      ReservedConcurrentExecutions: 5,
      LoggingConfig: { LogFormat: 'JSON', LogGroup: { Ref: id.logs } },
      Role: { 'Fn::GetAtt': [id.role, 'Arn'] },
      VpcConfig: Match.absent(),
    });
    template.hasResource('AWS::Logs::LogGroup', {
      Properties: { LogGroupName: '/aws/lambda/greenlight-approvals', RetentionInDays: 30 },
      DeletionPolicy: 'Delete',
    });
    // Its own role, with no managed policy: not the checks policy of the hooks.
    expect(json.Resources[id.role].Properties.ManagedPolicyArns).toBeUndefined();
    expect(stack.hooks.approvalsFunction).toBeDefined();
    expect(stack.hooks.functions).toHaveLength(4);
  });

  test('a public function URL (AuthType NONE), buffered, no CORS, on the endpoint', () => {
    template.resourceCountIs('AWS::Lambda::Url', 1);
    expect(json.Resources[id.url].Properties).toEqual({
      AuthType: 'NONE',
      InvokeMode: 'BUFFERED',
      TargetFunctionArn: { 'Fn::GetAtt': [id.fn, 'Arn'] },
    });
    // Both permissions a public URL needs, through the URL only.
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunctionUrl',
      FunctionName: { 'Fn::GetAtt': [id.fn, 'Arn'] },
      FunctionUrlAuthType: 'NONE',
      Principal: '*',
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [id.fn, 'Arn'] },
      InvokedViaFunctionUrl: true,
      Principal: '*',
    });
    expect(json.Outputs.ApprovalsUrl.Value).toEqual({ 'Fn::GetAtt': [id.url, 'FunctionUrl'] });
  });

  test('the store: private, TLS only, S3-managed encryption, versioned, retained, expiring after 365 days', () => {
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        BucketName: Match.absent(),
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        VersioningConfiguration: { Status: 'Enabled' },
        LifecycleConfiguration: {
          Rules: [
            Match.objectLike({
              Status: 'Enabled',
              ExpirationInDays: 365,
              NoncurrentVersionExpiration: { NoncurrentDays: 365 },
            }),
          ],
        },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id.bucket },
      PolicyDocument: {
        Statement: [
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ],
      },
    });
  });

  test('the signing key: 64 generated letters and digits, named under the prefix', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    expect(json.Resources[id.key].Properties).toEqual(
      expect.objectContaining({
        Name: 'greenlight/approval-signing-key',
        GenerateSecretString: { PasswordLength: 64, ExcludePunctuation: true },
      }),
    );
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 0);
  });

  test('the four hooks: the store, the key and the URL in their environment', () => {
    for (const fn of hookFunctions(template)) {
      expect(variablesOf(template, fn)).toEqual(
        expect.objectContaining({
          GREENLIGHT_APPROVAL_BUCKET: { Ref: id.bucket },
          GREENLIGHT_APPROVAL_KEY: { Ref: id.key },
          GREENLIGHT_APPROVAL_URL: { 'Fn::GetAtt': [id.url, 'FunctionUrl'] },
        }),
      );
      expect(Object.keys(variablesOf(template, fn)).filter((k) => k.includes('SLACK'))).toEqual([]);
    }
  });

  test('the endpoint: the store, the key, and the parameter holding its own URL (not the URL: it would depend on itself)', () => {
    expect(variablesOf(template, id.fn)).toEqual({
      GREENLIGHT_METRICS_NAMESPACE: 'Greenlight',
      GREENLIGHT_APPROVAL_BUCKET: { Ref: id.bucket },
      GREENLIGHT_APPROVAL_KEY: { Ref: id.key },
      GREENLIGHT_APPROVAL_URL_PARAMETER: '/greenlight/approvals/url',
    });
    const parameter = logicalIdOf(template, 'AWS::SSM::Parameter', 'HooksApprovalUrl');
    expect(json.Resources[parameter].Properties).toEqual(
      expect.objectContaining({
        Name: '/greenlight/approvals/url',
        Type: 'String',
        Value: { 'Fn::GetAtt': [id.url, 'FunctionUrl'] },
      }),
    );
  });

  test('no circular dependency: the hooks depend on the URL, the endpoint on none of the hooks', () => {
    const graph = dependencies(template);
    expect(findCycle(graph)).toBeUndefined();
    const hooks = hookFunctions(template);
    for (const fn of hooks) expect(closure(graph, fn)).toContain(id.url);
    const endpointSide = closure(graph, id.url);
    expect(endpointSide).toContain(id.fn);
    const aliases = IDS.map((i) => logicalIdOf(template, 'AWS::Lambda::Alias', `Hooks${i}Live`));
    for (const x of [...hooks, ...aliases, id.checks]) expect(endpointSide).not.toContain(x);
    // The same with everything on: a configuration file, a VPC, Slack.
    const full = synth({
      approvals: { slackSigningSecretArn: SIGNING, slackBotTokenSecretArn: BOT },
      configFile: { all: { checks: {} } },
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: ['subnet-0123456789abcdef0'],
    }).template;
    expect(findCycle(dependencies(full))).toBeUndefined();
  });

  test('the cycle check finds a cycle', () => {
    const graph = new Map([
      ['A', new Set(['B'])],
      ['B', new Set(['C'])],
      ['C', new Set(['A'])],
    ]);
    expect(findCycle(graph)).toEqual(['A', 'B', 'C', 'A']);
    expect(
      findCycle(
        new Map([
          ['A', new Set(['B'])],
          ['B', new Set<string>()],
        ]),
      ),
    ).toBeUndefined();
  });

  test('the checks policy gains exactly: read and write approvals/ in the store, read the key', () => {
    const off = synth().template;
    const without = statementsOf(off, logicalIdOf(off, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy'));
    expect(statementsOf(template, id.checks)).toEqual([
      ...without,
      {
        Sid: 'ReadWriteApprovals',
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject'],
        Resource: [`<${id.bucket}.Arn>/approvals/*`],
      },
      { Sid: 'ReadApprovalKey', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: [`<${id.key}>`] },
    ]);
  });

  test("the endpoint's role, statement by statement", () => {
    expect(statementsOf(template, id.rolePolicy)).toEqual([
      { Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: [`<${id.logs}.Arn>`] },
      {
        Sid: 'ReadWriteApprovals',
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject'],
        Resource: [`<${id.bucket}.Arn>/approvals/*`],
      },
      { Sid: 'ReadApprovalKey', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: [`<${id.key}>`] },
      {
        Sid: 'ReadApprovalUrl',
        Effect: 'Allow',
        Action: ['ssm:GetParameter'],
        Resource: [ARN('ssm', 'parameter/greenlight/approvals/url')],
      },
      {
        Sid: 'ReadEcsDeployments',
        Effect: 'Allow',
        Action: ['ecs:DescribeServiceDeployments', 'ecs:DescribeServiceRevisions'],
        Resource: [ARN('ecs', 'service-deployment/*'), ARN('ecs', 'service-revision/*')],
      },
      {
        Sid: 'ContinueEcsDeployments',
        Effect: 'Allow',
        Action: ['ecs:ContinueServiceDeployment'],
        Resource: [ARN('ecs', 'service-deployment/*')],
      },
      { Sid: 'ReadTaskDefinitions', Effect: 'Allow', Action: ['ecs:DescribeTaskDefinition'], Resource: ['*'] },
      {
        Sid: 'ReadNotificationSecrets',
        Effect: 'Allow',
        Action: ['secretsmanager:GetSecretValue', 'ssm:GetParameter'],
        Resource: [ARN('secretsmanager', 'secret:greenlight/*'), ARN('ssm', 'parameter/greenlight/*')],
      },
      { Sid: 'PublishNotifications', Effect: 'Allow', Action: ['sns:Publish'], Resource: [ARN('sns', 'greenlight-*')] },
      {
        Effect: 'Allow',
        Action: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'],
        Resource: [`<${id.queue}.Arn>`],
      },
    ]);
  });

  test('the store: only GetObject and PutObject under approvals/, by the five roles; no list, no delete', () => {
    const onStore = allStatements(template).filter((s) => s.Resource.some((r) => r.includes(id.bucket)));
    expect(onStore.map((s) => s.where).sort()).toEqual([id.checks, id.rolePolicy].sort());
    for (const s of onStore) {
      expect(s.Action).toEqual(['s3:GetObject', 's3:PutObject']);
      expect(s.Resource).toEqual([`<${id.bucket}.Arn>/approvals/*`]);
    }
    const actions = allStatements(template).flatMap((s) => s.Action);
    for (const a of ['s3:ListBucket', 's3:DeleteObject', 's3:DeleteObjectVersion']) expect(actions).not.toContain(a);
    // The key: read by the checks policy (the hooks) and the endpoint, and nothing else.
    const onKey = allStatements(template).filter((s) => s.Resource.includes(`<${id.key}>`));
    expect(onKey.map((s) => [s.where, s.Action])).toEqual(
      expect.arrayContaining([
        [id.checks, ['secretsmanager:GetSecretValue']],
        [id.rolePolicy, ['secretsmanager:GetSecretValue']],
      ]),
    );
    expect(onKey).toHaveLength(2);
  });

  test('ECS PAUSE hooks: a rule sends ECS Hook State Change events to the endpoint, retried, then to the queue', () => {
    template.resourceCountIs('AWS::Events::Rule', 1);
    template.hasResourceProperties('AWS::Events::Rule', {
      Name: 'greenlight-ecs-pause-hooks',
      EventPattern: { source: ['aws.ecs'], 'detail-type': ['ECS Hook State Change'] },
      State: 'ENABLED',
      Targets: [
        {
          Id: Match.anyValue(),
          Arn: { 'Fn::GetAtt': [id.fn, 'Arn'] },
          RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 3 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [id.queue, 'Arn'] } },
        },
      ],
    });
    const rule = logicalIdOf(template, 'AWS::Events::Rule', 'HooksPauseHooks');
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [id.fn, 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [rule, 'Arn'] },
    });
    // EventBridge may put an undeliverable event in the queue, from this rule only.
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: id.queue }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Action: 'sqs:SendMessage',
            Principal: { Service: 'events.amazonaws.com' },
            Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [rule, 'Arn'] } } },
          }),
        ]),
      },
    });
    // Lambda's own retries of the asynchronous invocation end in the same queue.
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: id.fn },
      Qualifier: '$LATEST',
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [id.queue, 'Arn'] } } },
    });
    expect(stack.hooks.pauseHooksRule).toBeDefined();
  });
});

describe('approvals options', () => {
  test('pauseHooks: false leaves out the rule and its permission, and nothing else', () => {
    const { stack, template } = synth({ approvals: { pauseHooks: false } });
    template.resourceCountIs('AWS::Events::Rule', 0);
    expect(
      Object.values(template.findResources('AWS::Lambda::Permission')).filter(
        (p) => p.Properties.Principal === 'events.amazonaws.com',
      ),
    ).toEqual([]);
    template.resourceCountIs('AWS::Lambda::Url', 1);
    template.resourceCountIs('AWS::S3::Bucket', 1);
    expect(stack.hooks.pauseHooksRule).toBeUndefined();
  });

  test('Slack secrets: in the endpoint environment and readable by it, only when given, never by the hooks', () => {
    const { template } = synth({ approvals: { slackSigningSecretArn: SIGNING, slackBotTokenSecretArn: BOT } });
    const id = ids(template);
    expect(variablesOf(template, id.fn)).toEqual(
      expect.objectContaining({ GREENLIGHT_SLACK_SIGNING_SECRET: SIGNING, GREENLIGHT_SLACK_BOT_TOKEN: BOT }),
    );
    expect(statementsOf(template, id.rolePolicy)).toContainEqual({
      Sid: 'ReadSlackSecrets',
      Effect: 'Allow',
      Action: ['secretsmanager:GetSecretValue'],
      Resource: [BOT, SIGNING],
    });
    for (const fn of hookFunctions(template)) {
      expect(Object.keys(variablesOf(template, fn)).filter((k) => k.includes('SLACK'))).toEqual([]);
      // The hooks know the Slack secrets only to refuse them in their configuration.
      expect(variablesOf(template, fn).GREENLIGHT_RESERVED_SECRETS).toBe(`${SIGNING},${BOT}`);
    }
    const bot = allStatements(template).filter((s) => s.Resource.includes(BOT));
    expect(bot.map((s) => s.where)).toEqual([id.rolePolicy]);

    // One without the other.
    const only = synth({ approvals: { slackSigningSecretArn: SIGNING } }).template;
    const onlyIds = ids(only);
    const vars = variablesOf(only, onlyIds.fn);
    expect(vars.GREENLIGHT_SLACK_SIGNING_SECRET).toBe(SIGNING);
    expect(vars.GREENLIGHT_SLACK_BOT_TOKEN).toBeUndefined();
    expect(statementsOf(only, onlyIds.rolePolicy).find((s) => s.Sid === 'ReadSlackSecrets')?.Resource).toEqual([
      SIGNING,
    ]);

    // Neither: no statement.
    const none = synth({ approvals: {} }).template;
    expect(statementsOf(none, ids(none).rolePolicy).find((s) => s.Sid === 'ReadSlackSecrets')).toBeUndefined();
  });

  test('reservedConcurrency and retention', () => {
    const { template } = synth({ approvals: { reservedConcurrency: 20, retention: Duration.days(90) } });
    template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'greenlight-approvals',
      ReservedConcurrentExecutions: 20,
    });
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ ExpirationInDays: 90, NoncurrentVersionExpiration: { NoncurrentDays: 90 } })],
      },
    });
    // A whole number of days given in hours is accepted.
    expect(() => synth({ approvals: { retention: Duration.hours(48) } })).not.toThrow();
  });

  test("the after-allow-traffic function's configuration: inline", () => {
    const config = { checks: { approval: { type: 'http', url: 'http://svc.internal/health' } } };
    const { template } = synth({ approvals: {}, functions: { afterAllowTraffic: { config } } });
    const id = ids(template);
    const after = logicalIdOf(template, 'AWS::Lambda::Function', 'HooksAfterAllowTraffic');
    expect(variablesOf(template, id.fn).GREENLIGHT_CONFIG).toEqual(variablesOf(template, after).GREENLIGHT_CONFIG);
    expect(variablesOf(template, id.fn).GREENLIGHT_CONFIG).toBeDefined();
    expect(variablesOf(template, id.fn).GREENLIGHT_CONFIG_PARAMETER).toBeUndefined();
  });

  test("the after-allow-traffic function's configuration: a parameter outside the prefix, read by name", () => {
    const { template } = synth({
      approvals: {},
      functions: { afterAllowTraffic: { configParameterName: '/platform/gates' } },
    });
    const id = ids(template);
    expect(variablesOf(template, id.fn).GREENLIGHT_CONFIG_PARAMETER).toBe('/platform/gates');
    expect(statementsOf(template, id.rolePolicy)).toContainEqual({
      Sid: 'ReadConfiguration',
      Effect: 'Allow',
      Action: ['ssm:GetParameter'],
      Resource: [ARN('ssm', 'parameter/platform/gates')],
    });
    // Under the prefix, the prefix's statement covers it.
    const under = synth({
      approvals: {},
      functions: { afterAllowTraffic: { configParameterName: '/greenlight/gates' } },
    });
    const underIds = ids(under.template);
    expect(variablesOf(under.template, underIds.fn).GREENLIGHT_CONFIG_PARAMETER).toBe('/greenlight/gates');
    expect(
      statementsOf(under.template, underIds.rolePolicy).find((s) => s.Sid === 'ReadConfiguration'),
    ).toBeUndefined();
  });

  test("the after-allow-traffic function's configuration: its parameter from configFile, with the digest", () => {
    const configFile = {
      all: {
        notifications: {
          channels: { ops: { type: 'sns', topicArn: 'arn:aws:sns:us-east-1:123456789012:greenlight-ops' } },
        },
      },
    };
    const { template } = synth({ approvals: {}, configFile });
    const id = ids(template);
    const after = logicalIdOf(template, 'AWS::Lambda::Function', 'HooksAfterAllowTraffic');
    const vars = variablesOf(template, id.fn);
    expect(vars.GREENLIGHT_CONFIG_PARAMETER).toBe('/greenlight/config/after-allow-traffic');
    expect(vars.GREENLIGHT_CONFIG_SHA256).toEqual(variablesOf(template, after).GREENLIGHT_CONFIG_SHA256);
    const parameter = logicalIdOf(template, 'AWS::SSM::Parameter', 'HooksAfterAllowTrafficConfig');
    expect(template.toJSON().Resources[id.fn].DependsOn).toContain(parameter);
    expect(statementsOf(template, id.rolePolicy)).toContainEqual({
      Sid: 'ReadConfiguration',
      Effect: 'Allow',
      Action: ['ssm:GetParameter'],
      Resource: [ARN('ssm', 'parameter/greenlight/config/after-allow-traffic')],
    });
    // One parameter per function, and the URL's: the endpoint shares after-allow-traffic's.
    expect(Object.keys(template.findResources('AWS::SSM::Parameter'))).toHaveLength(5);
  });

  test('notification topics given, and decryption keys, as for the hooks', () => {
    const app = testApp();
    const stack = new Stack(app, 'user');
    const topic = sns.Topic.fromTopicArn(stack, 'Topic', 'arn:aws:sns:us-east-1:123456789012:deployments');
    const key = kms.Key.fromKeyArn(
      stack,
      'Key',
      'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    );
    new GreenlightHooks(stack, 'Hooks', { approvals: {}, notificationTopics: [topic], decryptionKeys: [key] });
    const template = Template.fromStack(stack);
    const statements = statementsOf(template, ids(template).rolePolicy);
    expect(statements.find((s) => s.Sid === 'PublishNotifications')?.Resource).toEqual([
      ARN('sns', 'greenlight-*'),
      'arn:aws:sns:us-east-1:123456789012:deployments',
    ]);
    expect(statements).toContainEqual({
      Effect: 'Allow',
      Action: ['kms:Decrypt'],
      Resource: ['arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
    });
  });

  test("in a VPC: the endpoint in the hooks' subnets and security groups, with the network-interface permissions", () => {
    const { template } = synth({
      approvals: {},
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
    });
    const id = ids(template);
    const after = logicalIdOf(template, 'AWS::Lambda::Function', 'HooksAfterAllowTraffic');
    const resources = template.toJSON().Resources;
    expect(resources[id.fn].Properties.VpcConfig).toEqual(resources[after].Properties.VpcConfig);
    const sids = statementsOf(template, id.rolePolicy).map((s) => s.Sid);
    expect(sids).toEqual(expect.arrayContaining(['DescribeNetworkInterfaces', 'ManageNetworkInterfaces']));
  });

  test('the construct in a stack of its own, under another prefix', () => {
    const app = testApp();
    const stack = new Stack(app, 'user');
    const net = new Stack(app, 'net');
    const vpc = new ec2.Vpc(net, 'Vpc', {
      natGateways: 0,
      subnetConfiguration: [{ name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
    const hooks = new GreenlightHooks(stack, 'Hooks', {
      prefix: 'shop-gates',
      approvals: { slackSigningSecretArn: SIGNING },
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
    });
    const template = Template.fromStack(stack);
    expect(hooks.approvalsFunction).toBeDefined();
    expect(hooks.approvalsUrl).toBeDefined();
    expect(hooks.approvalStore).toBeDefined();
    expect(hooks.approvalKey).toBeDefined();
    template.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'shop-gates-approvals' });
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Name: 'shop-gates/approval-signing-key' });
    template.hasResourceProperties('AWS::SSM::Parameter', { Name: '/shop-gates/approvals/url' });
    template.hasResourceProperties('AWS::Events::Rule', { Name: 'shop-gates-ecs-pause-hooks' });
    const statements = statementsOf(template, ids(template).rolePolicy);
    expect(statements.find((s) => s.Sid === 'PublishNotifications')?.Resource).toEqual([ARN('sns', 'shop-gates-*')]);
    expect(
      flat(
        template.toJSON().Resources[ids(template).fn].Properties.Environment.Variables
          .GREENLIGHT_APPROVAL_URL_PARAMETER,
      ),
    ).toBe('/shop-gates/approvals/url');
  });

  describe('validation: a mistake fails synthesis naming the setting', () => {
    const attempt = (approvals: GreenlightApprovalsOptions) => () => synth({ approvals });

    test('Slack secrets must be Secrets Manager secret ARNs', () => {
      expect(attempt({ slackSigningSecretArn: 'arn:aws:ssm:us-east-1:123456789012:parameter/slack' })).toThrow(
        /approvals\.slackSigningSecretArn: .* is not a Secrets Manager secret ARN/,
      );
      expect(attempt({ slackBotTokenSecretArn: 'greenlight/slack-bot' })).toThrow(
        /approvals\.slackBotTokenSecretArn: .* is not a Secrets Manager secret ARN/,
      );
      expect(attempt({ slackSigningSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:*' })).toThrow(
        /approvals\.slackSigningSecretArn/,
      );
      expect(
        attempt({
          slackSigningSecretArn: 'arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:slack-AbCdEf',
        }),
      ).not.toThrow();
    });

    test('reservedConcurrency: an integer from 1 to 100', () => {
      for (const n of [0, -1, 101, 2.5, Number.NaN]) {
        expect(attempt({ reservedConcurrency: n })).toThrow(
          /approvals\.reservedConcurrency: .* is not an integer from 1 to 100/,
        );
      }
      for (const n of [1, 100]) expect(attempt({ reservedConcurrency: n })).not.toThrow();
    });

    test('retention: at least one day, whole days', () => {
      expect(attempt({ retention: Duration.hours(12) })).toThrow(/approvals\.retention: .*at least 1/);
      expect(attempt({ retention: Duration.hours(36) })).toThrow(/approvals\.retention: .*whole number of days/);
      expect(attempt({ retention: Duration.days(1) })).not.toThrow();
    });
  });
});
