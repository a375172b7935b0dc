import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { EcsBlueGreenExampleStack, GreenlightHooksStack, LifecycleStage, LambdaCanaryExampleStack } from '../lib';
import { resolveConfigFile } from '../lib/config-schema';
import { flat, logicalIdOf, statementsOf, testApp } from './helpers';

describe('the ECS blue/green example', () => {
  const stack = new EcsBlueGreenExampleStack(testApp(), 'greenlight-example-ecs');
  const template = Template.fromStack(stack);
  const json = template.toJSON();
  const service = json.Resources[logicalIdOf(template, 'AWS::ECS::Service', 'Service')].Properties;

  test('a Fargate service deployed BLUE_GREEN with a bake time', () => {
    expect(service.LaunchType).toBe('FARGATE');
    expect(service.DeploymentConfiguration).toMatchObject({
      Strategy: 'BLUE_GREEN',
      BakeTimeInMinutes: 5,
      MinimumHealthyPercent: 100,
      MaximumPercent: 200,
    });
    expect(service.DeploymentController).toBeUndefined(); // the ECS controller
  });

  test('production and test listeners route through rules to the blue and green target groups', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::TargetGroup', 2);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80 });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 8080 });
    const blue = logicalIdOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'Blue');
    const green = logicalIdOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup', 'Green');
    const production = logicalIdOf(template, 'AWS::ElasticLoadBalancingV2::ListenerRule', 'ProductionRule');
    const test = logicalIdOf(template, 'AWS::ElasticLoadBalancingV2::ListenerRule', 'TestRule');
    expect(service.LoadBalancers).toEqual([
      {
        ContainerName: 'web',
        ContainerPort: 80,
        TargetGroupArn: { Ref: blue },
        AdvancedConfiguration: {
          AlternateTargetGroupArn: { Ref: green },
          ProductionListenerRule: { Ref: production },
          TestListenerRule: { Ref: test },
          RoleArn: { 'Fn::GetAtt': [logicalIdOf(template, 'AWS::IAM::Role', 'ServiceAlternateTargetRole'), 'Arn'] },
        },
      },
    ]);
  });

  test('hooks attached through the construct, with the checks in hookDetails', () => {
    const hooks = service.DeploymentConfiguration.LifecycleHooks;
    expect(hooks.map((h: any) => h.LifecycleStages)).toEqual([
      ['PRE_SCALE_UP'],
      ['POST_SCALE_UP'],
      ['TEST_TRAFFIC_SHIFT'],
      ['POST_PRODUCTION_TRAFFIC_SHIFT'],
    ]);
    const lb = logicalIdOf(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer', 'LoadBalancer');
    expect(hooks[2].HookDetails.greenlight.checks.test).toMatchObject({ type: 'http', expectStatus: ['2xx'] });
    expect(flat(hooks[2].HookDetails.greenlight.checks.test.url)).toBe(`http://<${lb}.DNSName>:8080/`);
    expect(flat(hooks[3].HookDetails.greenlight.checks.production.url)).toBe(`http://<${lb}.DNSName>:80/`);
    expect(hooks[0].HookDetails).toEqual({
      example: 'greenlight-example-ecs',
      greenlight: { checks: { image: { type: 'imageAdmission', allowedRepositories: ['public.ecr.aws/*'] } } },
    });
    expect(hooks[1].HookDetails.greenlight.checks.tasks).toEqual({ type: 'taskHealth', within: '5m' });
    const role = logicalIdOf(template, 'AWS::IAM::Role', 'GreenlightInvokeRole');
    for (const h of hooks) expect(h.RoleArn).toEqual({ 'Fn::GetAtt': [role, 'Arn'] });
  });

  test('5xx alarms on both target groups roll a deployment back', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 2);
    expect(service.DeploymentConfiguration.Alarms).toMatchObject({ Enable: true, Rollback: true });
    expect(service.DeploymentConfiguration.Alarms.AlarmNames).toHaveLength(2);
  });

  test('no custom resource or function of its own, whose logs would outlive the stack', () => {
    expect(Object.keys(template.findResources('AWS::Lambda::Function'))).toEqual([]);
    expect(Object.values<any>(json.Resources).filter((r) => r.Type.startsWith('Custom::'))).toEqual([]);
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/aws/ecs/containerinsights/greenlight-example-ecs/performance',
    });
  });

  test('every log group goes with cdk destroy', () => {
    const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
    expect(groups).toHaveLength(3); // container logs, Container Insights, VPC flow logs
    for (const g of groups) expect([g.DeletionPolicy, g.UpdateReplacePolicy]).toEqual(['Delete', 'Delete']);
  });
});

describe('the Lambda canary example', () => {
  const stack = new LambdaCanaryExampleStack(testApp(), 'greenlight-example-lambda-canary');
  const template = Template.fromStack(stack);
  const json = template.toJSON();

  test('versions are kept when a new one is published; the alias is Prod', () => {
    template.hasResource('AWS::Lambda::Version', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    template.hasResourceProperties('AWS::Lambda::Alias', { Name: 'Prod' });
  });

  test('a CodeDeploy deployment group shifts 10 % for 5 minutes and rolls back on the alarm', () => {
    const alarm = logicalIdOf(template, 'AWS::CloudWatch::Alarm', 'Errors');
    template.hasResourceProperties('AWS::CodeDeploy::DeploymentGroup', {
      DeploymentConfigName: 'CodeDeployDefault.LambdaCanary10Percent5Minutes',
      AlarmConfiguration: { Enabled: true, Alarms: [{ Name: { Ref: alarm } }] },
      AutoRollbackConfiguration: {
        Enabled: true,
        Events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_REQUEST', 'DEPLOYMENT_STOP_ON_ALARM'],
      },
      DeploymentStyle: { DeploymentOption: 'WITH_TRAFFIC_CONTROL', DeploymentType: 'BLUE_GREEN' },
    });
  });

  test('the errors alarm: one error through the alias in a minute', () => {
    const alarm = json.Resources[logicalIdOf(template, 'AWS::CloudWatch::Alarm', 'Errors')].Properties;
    expect(alarm).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    const fn = logicalIdOf(template, 'AWS::Lambda::Function', 'Sample');
    expect(Object.fromEntries(alarm.Dimensions.map((d: any) => [d.Name, flat(d.Value)]))).toEqual({
      FunctionName: `<${fn}>`,
      Resource: `<${fn}>:Prod`,
    });
  });

  test("Greenlight's traffic hooks are the pre- and post-traffic hooks", () => {
    const alias = Object.values<any>(template.findResources('AWS::Lambda::Alias'))[0];
    const hooks = alias.UpdatePolicy.CodeDeployLambdaAliasUpdate;
    // The `live` alias of each function, by the name built from the prefix.
    const name = (hook: any) => {
      const [select, qualifier] = hook['Fn::Join'][1];
      expect(select['Fn::Select'][0]).toBe(6);
      return `${flat(select['Fn::Select'][1]['Fn::Split'][1])}${qualifier}`;
    };
    const arn = (n: string) => `arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:greenlight-${n}`;
    expect(name(hooks.BeforeAllowTrafficHook)).toBe(`${arn('before-allow-traffic')}:live`);
    expect(name(hooks.AfterAllowTrafficHook)).toBe(`${arn('after-allow-traffic')}:live`);
    // CodeDeploy's role may invoke those two aliases, and nothing else.
    const policy = logicalIdOf(template, 'AWS::IAM::Policy', 'DeploymentServiceRoleDefaultPolicy');
    expect(statementsOf(template, policy)).toEqual([
      {
        Effect: 'Allow',
        Action: ['lambda:InvokeFunction'],
        Resource: ['after-allow-traffic', 'before-allow-traffic'].map((n) => `${arn(n)}:live`),
      },
    ]);
  });

  test('the hooks configuration for this example names its application and alarm, and is valid', () => {
    const file = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'examples', 'lambda-canary-gates.json'), 'utf8'));
    const configs = resolveConfigFile(file, 'examples/lambda-canary-gates.json');
    const app = json.Resources[logicalIdOf(template, 'AWS::CodeDeploy::Application', 'Application')].Properties;
    const alarm = json.Resources[logicalIdOf(template, 'AWS::CloudWatch::Alarm', 'Errors')].Properties;
    expect(app.ApplicationName).toBe('greenlight-example-lambda-canary');
    expect(alarm.AlarmName).toBe('greenlight-example-lambda-canary-errors');
    const pre = (configs['before-allow-traffic'] as any).codeDeploy[app.ApplicationName].checks;
    const post = (configs['after-allow-traffic'] as any).codeDeploy[app.ApplicationName].checks;
    expect(pre.alarm).toMatchObject({ type: 'alarms', alarmNames: [alarm.AlarmName] });
    expect(post.newVersionErrors.query.metric).toMatchObject({
      namespace: 'AWS/Lambda',
      name: 'Errors',
      dimensions: { ExecutedVersion: '${newVersion}', FunctionName: '${functionName}' },
    });
    expect(post.alarm.alarmNames).toEqual([alarm.AlarmName]);
  });

  test("the sample's log group goes with cdk destroy", () => {
    template.hasResource('AWS::Logs::LogGroup', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });
});

describe('the ecspresso service definition', () => {
  const text = fs.readFileSync(path.join(__dirname, '..', 'examples', 'ecs-service-def.json'), 'utf8');
  const def = JSON.parse(text);

  test('reads the outputs the hooks stack has, with cfn_output', () => {
    const outputs = Template.fromStack(new GreenlightHooksStack(testApp(), 'greenlight-hooks')).toJSON().Outputs;
    const refs = [...text.matchAll(/\{\{ cfn_output `([^`]+)` `([^`]+)` \}\}/g)].map((m) => [m[1], m[2]]);
    expect(refs).toHaveLength(8);
    for (const [stackName, output] of refs) {
      expect(stackName).toBe('greenlight-hooks');
      expect(Object.keys(outputs)).toContain(output);
    }
  });

  test('four hooks at known stages, with a greenlight http check in hookDetails', () => {
    const hooks = def.deploymentConfiguration.lifecycleHooks;
    expect(def.deploymentConfiguration.strategy).toBe('BLUE_GREEN');
    expect(hooks).toHaveLength(4);
    for (const h of hooks) {
      for (const stage of h.lifecycleStages) expect(Object.values(LifecycleStage)).toContain(stage);
    }
    expect(hooks[2].hookDetails.greenlight.checks.health).toMatchObject({ type: 'http', expectStatus: ['2xx'] });
  });
});
