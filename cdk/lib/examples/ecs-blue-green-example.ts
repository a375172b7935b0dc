/**
 * Example: an ECS Fargate service behind an Application Load Balancer, deployed blue/green by
 * ECS, with Greenlight's hooks attached through `GreenlightServiceHooks`.
 *
 * Production listener :80 and test listener :8080 route through listener rules to the blue and
 * green target groups; ECS moves them during a deployment. Before-allow-traffic probes the
 * green revision on the test listener; after-allow-traffic probes production once it has
 * moved. Everything, logs included, goes with `cdk destroy`.
 */
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { GreenlightHooks, type GreenlightHookFunctions } from '../greenlight-hooks';
import { DEFAULT_PREFIX, validatePrefix } from '../hooks';
import { acknowledge, skipCheckov } from '../nag';
import { GreenlightServiceHooks } from '../service-hooks';

export interface EcsBlueGreenExampleStackProps extends StackProps {
  /** The prefix the hooks stack was deployed with. @default 'greenlight' */
  readonly prefix?: string;
  /** @default - the functions of the hooks stack deployed with `prefix` */
  readonly functions?: GreenlightHookFunctions;
  /** @default 'public.ecr.aws/nginx/nginx:stable' */
  readonly image?: string;
  /** @default Duration.minutes(5) */
  readonly bakeTime?: Duration;
}

const PRODUCTION_PORT = 80;
const TEST_PORT = 8080;

export class EcsBlueGreenExampleStack extends Stack {
  public readonly service: ecs.FargateService;
  public readonly greenlight: GreenlightServiceHooks;

  constructor(scope: Construct, id: string, props: EcsBlueGreenExampleStackProps = {}) {
    super(scope, id, props);
    const prefix = validatePrefix(props.prefix ?? DEFAULT_PREFIX);
    const functions = props.functions ?? GreenlightHooks.fromPrefix(this, 'GreenlightFunctions', prefix);

    // Public subnets only and no NAT gateway: the example stays cheap; tasks get public IPs to
    // pull the image, and only the load balancer may reach them.
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs) } },
      // Nothing here uses the default security group; emptying it takes a custom resource
      // whose function would leave a log group behind after `cdk destroy`.
      restrictDefaultSecurityGroup: false,
    });

    // Container Insights writes to this log group; created here so that it goes with the stack.
    const clusterName = this.stackName;
    const insights = new logs.LogGroup(this, 'ContainerInsightsLogs', {
      logGroupName: `/aws/ecs/containerinsights/${clusterName}/performance`,
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      clusterName,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    cluster.node.addDependency(insights);

    const appLogs = new logs.LogGroup(this, 'AppLogs', {
      retention: logs.RetentionDays.ONE_WEEK,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      cpu: 256,
      memoryLimitMiB: 512,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    taskDefinition.addContainer('web', {
      image: ecs.ContainerImage.fromRegistry(props.image ?? 'public.ecr.aws/nginx/nginx:stable'),
      portMappings: [{ containerPort: 80 }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'web', logGroup: appLogs }),
    });

    const alb = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc,
      internetFacing: true,
      dropInvalidHeaderFields: true,
    });
    skipCheckov(alb, 'CKV_AWS_91', 'An example: access logs would need a bucket that outlives the stack.');
    skipCheckov(
      alb.connections.securityGroups[0],
      'CKV_AWS_260',
      'An example service, open on its HTTP ports so that a blue/green deployment can be watched from a browser.',
    );
    for (const group of [flowLogs, insights, appLogs]) {
      skipCheckov(group, 'CKV_AWS_158', 'An example: encrypted by CloudWatch Logs with its own keys, kept a short time.');
    }
    acknowledge(
      alb,
      'AwsSolutions-ELB2',
      'Access logs need an S3 bucket with a policy for the regional load balancing account; the example keeps to what a blue/green deployment needs and leaves nothing behind on cdk destroy.',
    );
    acknowledge(
      alb,
      'AwsSolutions-EC23',
      "The example's load balancer is public: production :80 serves the sample page, and test :8080 must be reachable by Greenlight's functions, which run outside any VPC unless given one. Restrict both to your networks in real use.",
    );

    const targetGroup = (name: string) =>
      new elbv2.ApplicationTargetGroup(this, name, {
        vpc,
        port: 80,
        protocol: elbv2.ApplicationProtocol.HTTP,
        targetType: elbv2.TargetType.IP,
        healthCheck: { path: '/', interval: Duration.seconds(10), healthyThresholdCount: 2 },
        deregistrationDelay: Duration.seconds(30),
      });
    const blue = targetGroup('Blue');
    const green = targetGroup('Green');

    // ECS blue/green moves traffic by rewriting listener rules (not default actions).
    const notFound = elbv2.ListenerAction.fixedResponse(404, { contentType: 'text/plain', messageBody: 'not found' });
    const production = alb.addListener('Production', { port: PRODUCTION_PORT, open: true, defaultAction: notFound });
    const test = alb.addListener('Test', { port: TEST_PORT, open: true, defaultAction: notFound });
    for (const listener of [production, test]) {
      for (const check of ['CKV_AWS_2', 'CKV_AWS_103']) {
        skipCheckov(listener, check, 'An example without a domain or certificate: plain HTTP, as its cdk-nag acknowledgments say.');
      }
    }
    const productionRule = new elbv2.ApplicationListenerRule(this, 'ProductionRule', {
      listener: production,
      priority: 1,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/*'])],
      action: elbv2.ListenerAction.forward([blue]),
    });
    const testRule = new elbv2.ApplicationListenerRule(this, 'TestRule', {
      listener: test,
      priority: 1,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/*'])],
      action: elbv2.ListenerAction.forward([green]),
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition,
      desiredCount: 1,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      assignPublicIp: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      deploymentStrategy: ecs.DeploymentStrategy.BLUE_GREEN,
      bakeTime: props.bakeTime ?? Duration.minutes(5),
    });
    const target = this.service.loadBalancerTarget({
      containerName: 'web',
      containerPort: 80,
      protocol: ecs.Protocol.TCP,
      alternateTarget: new ecs.AlternateTarget('AlternateTarget', {
        alternateTargetGroup: green,
        productionListener: ecs.ListenerRuleConfiguration.applicationListenerRule(productionRule),
        testListener: ecs.ListenerRuleConfiguration.applicationListenerRule(testRule),
      }),
    });
    target.attachToApplicationTargetGroup(blue);
    acknowledge(
      this.service,
      '@aws-cdk/aws-ecs:shouldUseCircuitBreaker',
      'Blue/green deployments here are stopped and rolled back by the hooks and the deployment alarms; green tasks that never become healthy fail the hooks.',
    );
    this.service.connections.allowFrom(alb, ec2.Port.tcp(80), 'from the load balancer');
    acknowledge(
      this.service,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers]',
      'The AWS managed policy ECS documents for the role that lets it move listener rules and targets between the blue and green target groups; AWS keeps it in step with what ECS calls.',
    );

    // The checks, one per traffic hook. The functions read hookDetails.greenlight.
    const check = (port: number) => ({
      type: 'http',
      url: `http://${alb.loadBalancerDnsName}:${port}/`,
      expectStatus: ['2xx'],
      timeout: '3s',
      interval: '5s',
      consecutiveSuccesses: 3,
      failureLimit: 2,
      within: '5m',
    });
    this.greenlight = new GreenlightServiceHooks(this, 'Greenlight', {
      service: this.service,
      functions,
      hookDetails: { example: id },
      hooks: {
        // Before the new tasks start: their image comes from the public ECR gallery.
        beforeInstall: { config: { checks: { image: { type: 'imageAdmission', allowedRepositories: ['public.ecr.aws/*'] } } } },
        // Once they have started: all of them running, and healthy where a health check is defined.
        afterInstall: { config: { checks: { tasks: { type: 'taskHealth', within: '5m' } } } },
        beforeAllowTraffic: { config: { checks: { test: check(TEST_PORT) } } },
        afterAllowTraffic: { config: { checks: { production: check(PRODUCTION_PORT) } } },
      },
      targetGroupErrorAlarms: { targetGroups: [blue, green], threshold: 5 },
    });

    new CfnOutput(this, 'ProductionUrl', { value: `http://${alb.loadBalancerDnsName}/` });
    new CfnOutput(this, 'TestUrl', { value: `http://${alb.loadBalancerDnsName}:${TEST_PORT}/` });
    new CfnOutput(this, 'ClusterName', { value: cluster.clusterName });
    new CfnOutput(this, 'ServiceName', { value: this.service.serviceName });
  }
}
