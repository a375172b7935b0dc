/**
 * What a platform team sets from the command line and what keeps the hooks observable: the
 * VPC by ids, the configuration file in SSM parameters, versions and the live aliases, the
 * asynchronous path and its queue, alarms, the dashboard and the saved queries, the release
 * template, and the version kept in one place.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import {
  GreenlightHooksStack,
  type GreenlightHooksStackProps,
  QUERIES,
  ReleaseStack,
  configErrors,
  resolveConfigFile,
  workspaceVersion,
} from '../lib';
import { flat, logicalIdOf, statementsOf, testApp } from './helpers';

const NAMES = ['before-install', 'after-install', 'before-allow-traffic', 'after-allow-traffic'];
const IDS = ['BeforeInstall', 'AfterInstall', 'BeforeAllowTraffic', 'AfterAllowTraffic'];
const GATES = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'examples', 'gates.json'), 'utf8'));
const VPC = {
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
};

function synth(props: GreenlightHooksStackProps = {}) {
  const stack = new GreenlightHooksStack(testApp(), 'greenlight-hooks', props);
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() };
}

describe('network from the command line', () => {
  test('the functions in the subnets given, with a security group created: all egress, no ingress', () => {
    const { template, json } = synth(VPC);
    const sg = logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'SecurityGroup');
    expect(json.Resources[sg].Properties).toMatchObject({
      VpcId: VPC.vpcId,
      SecurityGroupEgress: [{ CidrIp: '0.0.0.0/0', IpProtocol: '-1' }],
    });
    expect(json.Resources[sg].Properties.SecurityGroupIngress).toBeUndefined();
    template.resourceCountIs('AWS::EC2::SecurityGroup', 1);
    for (const id of IDS) {
      const fn = json.Resources[logicalIdOf(template, 'AWS::Lambda::Function', `Hooks${id}`)].Properties;
      expect(fn.VpcConfig).toEqual({
        SubnetIds: VPC.subnetIds,
        SecurityGroupIds: [{ 'Fn::GetAtt': [sg, 'GroupId'] }],
      });
    }
  });

  test('security groups given are used as they are', () => {
    const { template, json } = synth({ ...VPC, securityGroupIds: ['sg-0123456789abcdef0'] });
    template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
    const fn = json.Resources[logicalIdOf(template, 'AWS::Lambda::Function', 'HooksBeforeInstall')].Properties;
    expect(fn.VpcConfig.SecurityGroupIds).toEqual(['sg-0123456789abcdef0']);
  });

  test('a VPC without subnets, or ids that are not ids, are refused', () => {
    expect(() => synth({ vpcId: VPC.vpcId })).toThrow(/needs both vpcId and subnetIds/);
    expect(() => synth({ ...VPC, vpcId: 'my-vpc' })).toThrow(/is not a VPC id/);
    expect(() => synth({ ...VPC, securityGroupIds: ['default'] })).toThrow(/not a security group id/);
  });
});

describe('configuration file', () => {
  const { template, json } = synth({ configFile: GATES });

  test("each function's configuration, `all` merged under it, in an SSM parameter under the prefix", () => {
    const configs = resolveConfigFile(GATES);
    NAMES.forEach((name, i) => {
      const param = logicalIdOf(template, 'AWS::SSM::Parameter', `Hooks${IDS[i]}Config`);
      const p = json.Resources[param].Properties;
      expect(p).toMatchObject({ Name: `/greenlight/config/${name}`, Type: 'String', Tier: 'Standard' });
      expect(JSON.parse(p.Value)).toEqual(configs[name as keyof typeof configs]);
      expect(JSON.parse(p.Value).codeDeployMaxWait).toBe('45m');
      const fn = json.Resources[logicalIdOf(template, 'AWS::Lambda::Function', `Hooks${IDS[i]}`)].Properties;
      expect(json.Resources[logicalIdOf(template, 'AWS::Lambda::Function', `Hooks${IDS[i]}`)].DependsOn).toContain(param);
      expect(fn.Environment.Variables).toEqual({
        GREENLIGHT_METRICS_NAMESPACE: 'Greenlight',
        GREENLIGHT_CONFIG_PARAMETER: `/greenlight/config/${name}`,
        GREENLIGHT_CONFIG_SHA256: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      // ssm:GetParameter on exactly that parameter.
      const inline = logicalIdOf(template, 'AWS::IAM::Policy', `Hooks${IDS[i]}RoleDefaultPolicy`);
      expect(statementsOf(template, inline)).toContainEqual({
        Sid: 'ReadOwnConfiguration',
        Effect: 'Allow',
        Action: ['ssm:GetParameter'],
        Resource: [`arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/greenlight/config/${name}`],
      });
    });
  });

  test('a changed configuration publishes a new version; the same one does not', () => {
    const versions = (t: Template) => Object.keys(t.findResources('AWS::Lambda::Version')).sort();
    const again = synth({ configFile: GATES }).template;
    expect(versions(again)).toEqual(versions(template));
    const changed = JSON.parse(JSON.stringify(GATES));
    changed['before-allow-traffic'].checks.health.timeout = '4s';
    const other = versions(synth({ configFile: changed }).template);
    const before = versions(template);
    // Only before-allow-traffic's version changes.
    expect(other.filter((v) => !before.includes(v))).toHaveLength(1);
    expect(other.find((v) => !before.includes(v))).toMatch(/^HooksBeforeAllowTrafficCurrentVersion/);
  });

  test('a typo or an unknown check type fails synthesis with the function and field path', () => {
    const typo = { ...GATES, 'before-allow-traffic': { checks: { web: { type: 'http', url: 'http://x/', timout: '3s' } } } };
    expect(() => synth({ configFile: typo })).toThrow(
      /before-allow-traffic: checks\.web\.timout: unknown key "timout" \(did you mean "timeout"\?\)/,
    );
    const kind = { 'after-install': { checks: { web: { type: 'htp' } } } };
    expect(() => synth({ configFile: kind })).toThrow(/after-install: checks\.web\.type: unknown type "htp"/);
    expect(() => synth({ configFile: { 'befor-install': {} } })).toThrow(/befor-install: unknown function \(did you mean "before-install"\?\)/);
    // `all` is merged under each function, so its mistakes are named for each.
    expect(() => synth({ configFile: { all: { whenNoChecks: 'never' } } })).toThrow(
      /before-install: whenNoChecks: "never" is not allowed; expected one of: "pass", "fail"/,
    );
  });

  test('decryption keys given may decrypt', () => {
    const key = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const { template: t } = synth({ decryptionKeyArns: [key] });
    const policy = logicalIdOf(t, 'AWS::IAM::ManagedPolicy', 'HooksChecksPolicy');
    expect(statementsOf(t, policy)).toContainEqual({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [key] });
    expect(() => synth({ decryptionKeyArns: ['alias/x'] })).toThrow(/not a KMS key ARN/);
  });
});

describe('versions, aliases and the asynchronous path', () => {
  const { template, json } = synth({ alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:alarms' });

  test('each function has a live alias on its current version, kept when a new one is published', () => {
    template.resourceCountIs('AWS::Lambda::Alias', 4);
    template.resourceCountIs('AWS::Lambda::Version', 4);
    for (const id of IDS) {
      const alias = json.Resources[logicalIdOf(template, 'AWS::Lambda::Alias', `Hooks${id}Live`)].Properties;
      const version = logicalIdOf(template, 'AWS::Lambda::Version', `Hooks${id}CurrentVersion`);
      expect(alias).toMatchObject({ Name: 'live', FunctionVersion: { 'Fn::GetAtt': [version, 'Version'] } });
      expect(json.Resources[version]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
      expect(json.Outputs[`${id}HookArn`].Value).toEqual({ Ref: logicalIdOf(template, 'AWS::Lambda::Alias', `Hooks${id}Live`) });
    }
  });

  test('asynchronous invocations: 2 retries, 30 minutes at most, then the encrypted queue', () => {
    const queue = logicalIdOf(template, 'AWS::SQS::Queue', 'HooksFailedInvocations');
    expect(json.Resources[queue].Properties).toMatchObject({
      QueueName: 'greenlight-failed-invocations',
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    // TLS only.
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ],
      },
    });
    // The alias (CodeDeploy's invocations), the current version (the continuations of a hook
    // running on it) and $LATEST, per function.
    const configs = Object.values<any>(template.findResources('AWS::Lambda::EventInvokeConfig'));
    expect(configs).toHaveLength(12);
    for (const c of configs) {
      expect(c.Properties).toMatchObject({
        MaximumRetryAttempts: 2,
        MaximumEventAgeInSeconds: 1800,
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queue, 'Arn'] } } },
      });
    }
    const qualifiers = configs.map((c) => c.Properties.Qualifier);
    expect(qualifiers.filter((q) => q === '$LATEST')).toHaveLength(4);
    expect(qualifiers.filter((q) => q?.['Fn::GetAtt']?.[1] === 'Version')).toHaveLength(4);
  });

  test('the ECS invoke role may invoke each function, its alias and its versions', () => {
    const inline = logicalIdOf(template, 'AWS::IAM::Policy', 'HooksEcsInvokeRoleDefaultPolicy');
    const [statement] = statementsOf(template, inline);
    expect(statement.Resource).toHaveLength(8);
    expect(statement.Resource.filter((r) => r.endsWith(':*'))).toHaveLength(4);
  });

  test('alarms on Errors, Throttles and AsyncEventsDropped of each function and on the queue, to the topic', () => {
    const alarms = Object.values<any>(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms).toHaveLength(13);
    for (const name of NAMES) {
      for (const metric of ['Errors', 'Throttles', 'AsyncEventsDropped']) {
        const a = alarms.find(
          (x) => x.MetricName === metric && x.Dimensions?.[0]?.Value === undefined && flat(x.AlarmName).includes(name),
        ) ?? alarms.find((x) => x.MetricName === metric && flat(x.AlarmName).startsWith(`greenlight-${name}-`));
        expect(a).toMatchObject({ Namespace: 'AWS/Lambda', Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
      }
    }
    const depth = alarms.find((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(depth).toMatchObject({ Namespace: 'AWS/SQS', Threshold: 0, AlarmName: 'greenlight-failed-invocations' });
    for (const a of alarms) {
      expect(a.AlarmActions).toEqual(['arn:aws:sns:us-east-1:123456789012:alarms']);
      expect(a.OKActions).toEqual(['arn:aws:sns:us-east-1:123456789012:alarms']);
    }
    expect(() => synth({ alarmTopicArn: 'alarms' })).toThrow(/not an SNS topic ARN/);
  });

  test('without a topic, the alarms have no action', () => {
    const { template: t } = synth();
    for (const a of Object.values<any>(t.findResources('AWS::CloudWatch::Alarm'))) {
      expect(a.Properties.AlarmActions).toBeUndefined();
    }
  });
});

describe('what the gates decided', () => {
  const { template, json } = synth({ metricsNamespace: 'Gates' });
  const body = () => {
    const d = Object.values<any>(template.findResources('AWS::CloudWatch::Dashboard'))[0].Properties;
    // The body is a Fn::Join of strings and tokens: tokens are written as <Ref>.
    return JSON.parse(flat(d.DashboardBody).replace(/<([A-Za-z0-9]+)>/g, '$1'));
  };

  test('the functions publish their metrics to the namespace given', () => {
    for (const id of IDS) {
      const fn = json.Resources[logicalIdOf(template, 'AWS::Lambda::Function', `Hooks${id}`)].Properties;
      expect(fn.Environment.Variables.GREENLIGHT_METRICS_NAMESPACE).toBe('Gates');
    }
  });

  test('a dashboard: verdicts, failures by check type, time to verdict, IN_PROGRESS, rollbacks, the functions', () => {
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'greenlight-gates' });
    const widgets = body().widgets as any[];
    const titles = widgets.map((w) => w.properties.title).filter(Boolean);
    expect(titles).toEqual(
      expect.arrayContaining([
        'Verdicts (all functions, stages and services)',
        'Failed checks by check type',
        'Time to verdict (ms, p50 and p90 by function and stage)',
        'IN_PROGRESS answers by function and stage',
        'Rollbacks seen (traffic moving back)',
        'Function errors',
        'Function throttles',
        'Function duration (p90, ms)',
      ]),
    );
    const expressions = widgets
      .flatMap((w) => w.properties.metrics ?? [])
      .flatMap((m: any[]) => m.filter((x) => typeof x === 'object' && x.expression).map((x) => x.expression as string));
    // The EMF contract: the dimension sets and metric names the functions write.
    for (const m of ['Succeeded', 'Failed', 'InProgress']) {
      expect(expressions).toContain(`SUM(SEARCH('{Gates,Function,Stage} MetricName="${m}"', 'Sum', 300))`);
    }
    expect(expressions).toContain(`SEARCH('{Gates,Function,CheckType} MetricName="CheckFailed"', 'Sum', 300)`);
    expect(expressions).toContain(`SEARCH('{Gates,Function,Stage} MetricName="TimeToVerdict"', 'p90', 300)`);
    expect(expressions).toContain(`SEARCH('{Gates,Function,Stage,Service} MetricName="Rollback"', 'Sum', 300)`);
  });

  test('saved Logs Insights queries over the four log groups', () => {
    const queries = Object.values<any>(template.findResources('AWS::Logs::QueryDefinition')).map((q) => q.Properties);
    expect(queries.map((q) => q.Name).sort()).toEqual(QUERIES.map((q) => `greenlight/${q.name}`).sort());
    const groups = IDS.map((id) => ({ Ref: logicalIdOf(template, 'AWS::Logs::LogGroup', `Hooks${id}Logs`) }));
    for (const q of queries) expect(q.LogGroupNames).toEqual(groups);
    const failed = queries.find((q) => q.Name === 'greenlight/failed decisions').QueryString;
    expect(failed).toContain('jsonParse(`fields.decision`) as d');
    expect(failed).toContain('d.verdict = "FAILED" or d.verdict = "Failed"');
    const why = queries.find((q) => q.Name === 'greenlight/why did a service fail').QueryString;
    expect(why).toContain('d.deployment.service = "checkout"');
    expect(why).toContain('unnest d.checks into c');
  });
});

describe('the release template', () => {
  const stack = new ReleaseStack(testApp(), 'greenlight', { version: '9.8.7' });
  const json = Template.fromStack(stack).toJSON();

  test('parameters for the code, the network, the configuration and the alarms', () => {
    expect(Object.keys(json.Parameters).sort()).toEqual(
      [
        'AfterAllowTrafficConfigParameter',
        'AfterInstallConfigParameter',
        'AlarmTopicArn',
        'ArtifactBucket',
        'ArtifactPrefix',
        'BeforeAllowTrafficConfigParameter',
        'BeforeInstallConfigParameter',
        'ConfigRevision',
        'DecryptionKeyArns',
        'LogRetentionDays',
        'MetricsNamespace',
        'Prefix',
        'SecurityGroupIds',
        'SubnetIds',
        'VpcId',
      ].sort(),
    );
    expect(json.Parameters.ArtifactPrefix.Default).toBe('greenlight/9.8.7/');
    expect(Object.keys(json.Conditions)).toEqual(expect.arrayContaining(['HasVpc', 'CreateSecurityGroup', 'HasAlarmTopic']));
  });

  test('no CDK bootstrap needed: no assets, no bootstrap version check', () => {
    expect(json.Parameters.BootstrapVersion).toBeUndefined();
    expect(json.Rules).toBeUndefined();
    for (const r of Object.values<any>(json.Resources)) expect(r.Type).not.toBe('AWS::CDK::Metadata');
  });

  test('the code comes from the zips in the bucket, and the network is decided at deployment', () => {
    const fns = Object.values<any>(json.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(fns).toHaveLength(4);
    for (const fn of fns) {
      expect(fn.Properties.Code.S3Bucket).toEqual({ Ref: 'ArtifactBucket' });
      expect(flat(fn.Properties.Code.S3Key)).toMatch(/^<ArtifactPrefix>[a-z-]+\.zip$/);
      expect(fn.Properties.VpcConfig['Fn::If'][0]).toBe('HasVpc');
      expect(fn.Properties.Environment.Variables.GREENLIGHT_CONFIG_PARAMETER['Fn::If'][0]).toMatch(/^Has.*Config$/);
    }
  });
});

describe('one version', () => {
  test("cdk/package.json's version is the workspace's", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
    expect(pkg.version).toBe(workspaceVersion());
  });
});

describe('documented configuration', () => {
  test('the example configuration files are valid', () => {
    for (const f of ['gates.json', 'lambda-canary-gates.json']) {
      const file = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'examples', f), 'utf8'));
      expect(() => resolveConfigFile(file, f)).not.toThrow();
    }
  });

  test('every JSON configuration-file block in the README validates', () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    // Fenced as jsonc: the Rust tests read the ```json blocks, which are configuration documents.
    const files = [...readme.matchAll(/<!-- example: configuration file[^>]*-->\n```jsonc\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(files.length).toBeGreaterThan(0);
    for (const b of files) expect(() => resolveConfigFile(JSON.parse(b), 'README')).not.toThrow();
    // The README's configuration documents pass the same schema check as the CDK app's.
    const docs = [...readme.matchAll(/<!-- example: configuration -->\n```json\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(docs.length).toBeGreaterThan(0);
    for (const d of docs) expect(configErrors(JSON.parse(d))).toEqual([]);
  });
});
