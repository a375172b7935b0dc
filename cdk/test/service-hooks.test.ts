import { Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import {
  GreenlightHooks,
  GreenlightServiceHooks,
  type GreenlightServiceHooksProps,
  HookTimeoutAction,
  LifecycleStage,
  composePatches,
} from '../lib';
import { flat, logicalIdOf, statementsOf, testApp } from './helpers';

// The hooks name the functions' `live` aliases.
const FN = (name: string) =>
  `arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:greenlight-${name}:live`;

function fixture(strategy: ecs.DeploymentStrategy | null = ecs.DeploymentStrategy.BLUE_GREEN) {
  const stack = new Stack(testApp(), 'service');
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }],
  });
  const cluster = new ecs.Cluster(stack, 'Cluster', { vpc });
  const taskDefinition = new ecs.FargateTaskDefinition(stack, 'Task');
  taskDefinition.addContainer('web', {
    image: ecs.ContainerImage.fromRegistry('public.ecr.aws/nginx/nginx:stable'),
    portMappings: [{ containerPort: 80 }],
  });
  const service = new ecs.FargateService(stack, 'Service', {
    cluster,
    taskDefinition,
    deploymentStrategy: strategy ?? undefined,
    minHealthyPercent: 100,
    canaryConfiguration:
      strategy === ecs.DeploymentStrategy.CANARY ? { stepPercent: 10, stepBakeTime: Duration.minutes(5) } : undefined,
  });
  Validations.of(service).acknowledge({ id: '@aws-cdk/aws-ecs:shouldUseCircuitBreaker', reason: 'a test fixture' });
  const functions = GreenlightHooks.fromPrefix(stack, 'GreenlightFunctions');
  return { stack, vpc, service, functions };
}

function hooksOf(stack: Stack): any[] {
  const template = Template.fromStack(stack);
  const id = logicalIdOf(template, 'AWS::ECS::Service', 'Service');
  return template.toJSON().Resources[id].Properties.DeploymentConfiguration.LifecycleHooks ?? [];
}

function attach(props: Partial<GreenlightServiceHooksProps> = {}, strategy?: ecs.DeploymentStrategy | null) {
  const f = fixture(strategy);
  const hooks = new GreenlightServiceHooks(f.stack, 'Greenlight', {
    service: f.service,
    functions: f.functions,
    ...props,
  });
  return { ...f, hooks };
}

describe('GreenlightServiceHooks', () => {
  test('attaches the four functions at their default stages with one invoke role', () => {
    const { stack } = attach();
    const hooks = hooksOf(stack);
    const template = Template.fromStack(stack);
    const role = logicalIdOf(template, 'AWS::IAM::Role', 'GreenlightInvokeRole');
    expect(hooks.map((h) => [flat(h.HookTargetArn), h.LifecycleStages])).toEqual([
      [FN('before-install'), ['PRE_SCALE_UP']],
      [FN('after-install'), ['POST_SCALE_UP']],
      [FN('before-allow-traffic'), ['TEST_TRAFFIC_SHIFT']],
      [FN('after-allow-traffic'), ['POST_PRODUCTION_TRAFFIC_SHIFT']],
    ]);
    for (const h of hooks) {
      expect(h.RoleArn).toEqual({ 'Fn::GetAtt': [role, 'Arn'] });
      expect(h.HookDetails).toBeUndefined();
      expect(h.TimeoutConfiguration).toBeUndefined();
    }
    // The invoke role: trusts ECS for this account only, invokes the attached functions and
    // nothing else.
    const json = template.toJSON();
    expect(json.Resources[role].Properties.AssumeRolePolicyDocument.Statement).toEqual([
      {
        Action: 'sts:AssumeRole',
        Effect: 'Allow',
        Principal: { Service: 'ecs.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      },
    ]);
    const policy = logicalIdOf(template, 'AWS::IAM::Policy', 'GreenlightInvokeRoleDefaultPolicy');
    expect(statementsOf(template, policy)).toEqual([
      {
        Sid: 'InvokeGreenlightHooks',
        Effect: 'Allow',
        Action: ['lambda:InvokeFunction'],
        Resource: ['after-allow-traffic', 'after-install', 'before-allow-traffic', 'before-install'].map(FN),
      },
    ]);
  });

  test('renders the configuration into hookDetails, merged per hook', () => {
    const { stack } = attach({
      config: {
        checks: { health: { type: 'http', url: 'http://svc.internal/health', headers: { 'x-env': 'green' } } },
        whenNoChecks: 'fail',
      },
      hookDetails: { team: 'payments' },
      hooks: {
        beforeInstall: false,
        afterInstall: false,
        beforeAllowTraffic: {
          config: { checks: { health: { url: 'http://svc.internal:8080/ready', headers: null } } },
          hookDetails: { ticket: 'OPS-1' },
        },
        afterAllowTraffic: { config: { checks: { health: null } } },
      },
    });
    const hooks = hooksOf(stack);
    expect(hooks).toHaveLength(2);
    expect(hooks[0].HookDetails).toEqual({
      team: 'payments',
      ticket: 'OPS-1',
      greenlight: {
        checks: { health: { type: 'http', url: 'http://svc.internal:8080/ready', headers: null } },
        whenNoChecks: 'fail',
      },
    });
    expect(hooks[1].HookDetails).toEqual({
      team: 'payments',
      greenlight: { checks: { health: null }, whenNoChecks: 'fail' },
    });
  });

  test('stages the L2 cannot name, and timeouts, come through the override', () => {
    const { stack } = attach({
      timeout: { timeout: Duration.minutes(30) },
      hooks: {
        beforeInstall: { stages: [LifecycleStage.RECONCILE_SERVICE, LifecycleStage.PRE_SCALE_UP] },
        afterInstall: false,
        beforeAllowTraffic: {
          stages: [LifecycleStage.POST_TEST_TRAFFIC_SHIFT, LifecycleStage.PRE_PRODUCTION_TRAFFIC_SHIFT],
          timeout: { timeout: Duration.hours(2), action: HookTimeoutAction.CONTINUE },
        },
        afterAllowTraffic: { stages: [LifecycleStage.PRE_PRODUCTION_TRAFFIC_SHIFT] },
      },
    });
    const hooks = hooksOf(stack);
    expect(hooks.map((h) => [h.LifecycleStages, h.TimeoutConfiguration])).toEqual([
      [['RECONCILE_SERVICE', 'PRE_SCALE_UP'], { TimeoutInMinutes: 30, Action: 'ROLLBACK' }],
      [['POST_TEST_TRAFFIC_SHIFT', 'PRE_PRODUCTION_TRAFFIC_SHIFT'], { TimeoutInMinutes: 120, Action: 'CONTINUE' }],
      [['PRE_PRODUCTION_TRAFFIC_SHIFT'], { TimeoutInMinutes: 30, Action: 'ROLLBACK' }],
    ]);
  });

  test('with CANARY, after-allow-traffic runs at every production traffic step too', () => {
    const { stack } = attach({}, ecs.DeploymentStrategy.CANARY);
    expect(hooksOf(stack)[3].LifecycleStages).toEqual(['PRODUCTION_TRAFFIC_SHIFT', 'POST_PRODUCTION_TRAFFIC_SHIFT']);
  });

  test("the service's other lifecycle hooks are kept, in order", () => {
    const f = fixture();
    const other = new lambda.Function(f.stack, 'Other', {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({ hookStatus: "SUCCEEDED" })'),
    });
    f.service.addLifecycleHook(
      new ecs.DeploymentLifecycleLambdaTarget(other, 'Before', {
        lifecycleStages: [ecs.DeploymentLifecycleStage.PRE_SCALE_UP],
      }),
    );
    new GreenlightServiceHooks(f.stack, 'Greenlight', {
      service: f.service,
      functions: f.functions,
      config: { checks: {} },
      hooks: { beforeInstall: false, afterInstall: false, afterAllowTraffic: false },
    });
    f.service.addLifecycleHook(
      new ecs.DeploymentLifecycleLambdaTarget(other, 'After', {
        lifecycleStages: [ecs.DeploymentLifecycleStage.POST_PRODUCTION_TRAFFIC_SHIFT],
      }),
    );
    const template = Template.fromStack(f.stack);
    const otherId = logicalIdOf(template, 'AWS::Lambda::Function', 'Other');
    const hooks = hooksOf(f.stack);
    expect(hooks.map((h) => [flat(h.HookTargetArn), h.LifecycleStages, h.HookDetails])).toEqual([
      [`<${otherId}.Arn>`, ['PRE_SCALE_UP'], undefined],
      [FN('before-allow-traffic'), ['TEST_TRAFFIC_SHIFT'], { greenlight: { checks: {} } }],
      [`<${otherId}.Arn>`, ['POST_PRODUCTION_TRAFFIC_SHIFT'], undefined],
    ]);
  });

  test('two attachments on one service are both rendered', () => {
    const f = fixture();
    new GreenlightServiceHooks(f.stack, 'Traffic', {
      service: f.service,
      functions: f.functions,
      config: { checks: { a: { type: 'http', url: 'http://a' } } },
      hooks: { beforeInstall: false, afterInstall: false },
    });
    new GreenlightServiceHooks(f.stack, 'Install', {
      service: f.service,
      functions: f.functions,
      config: { checks: { b: { type: 'http', url: 'http://b' } } },
      hooks: { beforeAllowTraffic: false, afterAllowTraffic: false },
    });
    const hooks = hooksOf(f.stack);
    expect(hooks.map((h) => Object.keys(h.HookDetails.greenlight.checks)[0])).toEqual(['a', 'a', 'b', 'b']);
    expect(hooks.map((h) => flat(h.HookTargetArn))).toEqual(
      ['before-allow-traffic', 'after-allow-traffic', 'before-install', 'after-install'].map(FN),
    );
  });

  test('a given invoke role is used as is', () => {
    const f = fixture();
    const role = iam.Role.fromRoleArn(
      f.stack,
      'Shared',
      'arn:aws:iam::123456789012:role/greenlight-ecs-hooks-eu-west-1',
    );
    new GreenlightServiceHooks(f.stack, 'Greenlight', { service: f.service, functions: f.functions, invokeRole: role });
    expect(hooksOf(f.stack).map((h) => h.RoleArn)).toEqual(
      Array(4).fill('arn:aws:iam::123456789012:role/greenlight-ecs-hooks-eu-west-1'),
    );
    Template.fromStack(f.stack).resourceCountIs('AWS::IAM::Role', 2); // task role, execution role
  });

  test('deployment alarms: those given and 5xx alarms on the target groups roll back', () => {
    const f = fixture();
    const alb = new elbv2.ApplicationLoadBalancer(f.stack, 'Alb', { vpc: f.vpc });
    const listener = alb.addListener('Http', { port: 80, open: false });
    const tg = new elbv2.ApplicationTargetGroup(f.stack, 'Blue', {
      vpc: f.vpc,
      port: 80,
      targetType: elbv2.TargetType.IP,
    });
    listener.addTargetGroups('Default', { targetGroups: [tg] });
    const latency = new cloudwatch.Alarm(f.stack, 'Latency', {
      alarmName: 'shop-latency',
      metric: tg.metrics.targetResponseTime(),
      threshold: 1,
      evaluationPeriods: 1,
    });
    new GreenlightServiceHooks(f.stack, 'Greenlight', {
      service: f.service,
      functions: f.functions,
      alarms: [latency],
      targetGroupErrorAlarms: { targetGroups: [tg], threshold: 3 },
    });
    const template = Template.fromStack(f.stack);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HTTPCode_Target_5XX_Count',
      Namespace: 'AWS/ApplicationELB',
      Statistic: 'Sum',
      Period: 60,
      Threshold: 3,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    const service = logicalIdOf(template, 'AWS::ECS::Service', 'Service');
    const alarms = template.toJSON().Resources[service].Properties.DeploymentConfiguration.Alarms;
    expect(alarms.Enable).toBe(true);
    expect(alarms.Rollback).toBe(true);
    expect(alarms.AlarmNames).toHaveLength(2);
    expect(alarms.AlarmNames[1]).toMatch(/-target-group-1-5xx$/);
  });

  test("aws-cdk-lib's own DeploymentLifecycleStage values are accepted as stages", () => {
    const f = attach({
      config: { checks: { health: { type: 'http', url: 'http://svc.internal/health' } } },
      hooks: {
        beforeAllowTraffic: {
          stages: [ecs.DeploymentLifecycleStage.TEST_TRAFFIC_SHIFT, LifecycleStage.PRE_PRODUCTION_TRAFFIC_SHIFT],
        },
      },
    });
    expect(hooksOf(f.stack)[2].LifecycleStages).toEqual(['TEST_TRAFFIC_SHIFT', 'PRE_PRODUCTION_TRAFFIC_SHIFT']);
  });

  test('a hook with no checks in its configuration gets a warning annotation', () => {
    const f = attach({ hooks: { afterAllowTraffic: { config: { checks: { production: { type: 'alarms', alarmNames: ['x'] } } } } } });
    const warnings = Annotations.fromStack(f.stack)
      .findWarning('*', Match.stringLikeRegexp('no checks'))
      .map((w) => String(w.entry.data));
    expect(warnings.map((w) => w.split(':')[0]).sort()).toEqual([
      'hooks.afterInstall',
      'hooks.beforeAllowTraffic',
      'hooks.beforeInstall',
    ]);
  });

  describe('refuses', () => {
    test('a configuration with a typo or an unknown check type, naming the field', () => {
      expect(() =>
        attach({ config: { checks: { web: { type: 'http', url: 'http://svc/health', timout: '3s' } } } }),
      ).toThrow(/checks\.web\.timout: unknown key "timout" \(did you mean "timeout"\?\)/);
      expect(() => attach({ hooks: { beforeAllowTraffic: { config: { checks: { web: { type: 'htp' } } } } } })).toThrow(
        /hooks\.beforeAllowTraffic\.config: checks\.web\.type: unknown type "htp" \(did you mean "http"\?\)/,
      );
      expect(() =>
        attach({ hooks: { afterInstall: { config: { checks: { tasks: { type: 'taskHealth', within: 5 } } } } } }),
      ).toThrow(/checks\.tasks\.within: expected string, found number 5/);
    });
    test('but a hook may override part of a check defined elsewhere, or remove one', () => {
      const f = attach({
        config: { checks: { web: { type: 'http', url: 'http://svc/health' } } },
        hooks: { afterAllowTraffic: { config: { checks: { web: { url: 'http://svc/ready' }, other: null } } } },
      });
      expect(hooksOf(f.stack)[3].HookDetails.greenlight.checks.web).toEqual({ type: 'http', url: 'http://svc/ready' });
      expect(() => attach({ hooks: { afterAllowTraffic: { config: { checks: { web: { urll: 'x' } } } } } })).toThrow(
        /checks\.web\.urll: unknown key "urll" \(did you mean "url"\?\)/,
      );
    });
    test('a service without a blue/green, canary or linear strategy', () => {
      expect(() => attach({}, ecs.DeploymentStrategy.ROLLING)).toThrow(
        /BLUE_GREEN, CANARY or LINEAR \(found ROLLING\)/,
      );
      expect(() => attach({}, null)).toThrow(/found none/);
    });
    test('every hook turned off', () => {
      expect(() =>
        attach({
          hooks: { beforeInstall: false, afterInstall: false, beforeAllowTraffic: false, afterAllowTraffic: false },
        }),
      ).toThrow(/attach at least one/);
    });
    test('keys Greenlight owns in hookDetails', () => {
      expect(() => attach({ hookDetails: { greenlight: {} } })).toThrow(
        /hookDetails.greenlight: Greenlight owns this key/,
      );
      expect(() => attach({ hooks: { afterInstall: { hookDetails: { greenlightState: {} } } } })).toThrow(
        /hooks.afterInstall.hookDetails.greenlightState/,
      );
    });
    test('unknown, repeated or no stages', () => {
      expect(() => attach({ hooks: { afterInstall: { stages: ['BAKE_TIME' as LifecycleStage] } } })).toThrow(
        /unknown stage "BAKE_TIME"/,
      );
      expect(() =>
        attach({ hooks: { afterInstall: { stages: [LifecycleStage.POST_SCALE_UP, LifecycleStage.POST_SCALE_UP] } } }),
      ).toThrow(/named twice/);
      expect(() => attach({ hooks: { afterInstall: { stages: [] } } })).toThrow(/at least one stage/);
    });
    test('a timeout that is not whole minutes from 1 to 20160', () => {
      expect(() => attach({ timeout: { timeout: Duration.seconds(90) } })).toThrow(/whole number of minutes/);
      expect(() => attach({ timeout: { timeout: Duration.days(15) } })).toThrow(/whole number of minutes/);
    });
  });
});

describe('composePatches', () => {
  test('applying the composition equals applying both in turn', () => {
    expect(composePatches({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] })).toEqual({
      a: 1,
      b: { c: null, d: 3, e: 4 },
      f: [1],
    });
    expect(composePatches(undefined, { a: 1 })).toEqual({ a: 1 });
    expect(composePatches({ a: 1 }, undefined)).toEqual({ a: 1 });
    expect(composePatches({ a: { b: 1 } }, { a: 'x' })).toEqual({ a: 'x' });
  });
});
