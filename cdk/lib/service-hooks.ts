/**
 * Attaches Greenlight to an ECS service that deploys with the ECS deployment controller and a
 * BLUE_GREEN, CANARY or LINEAR strategy: the hooks at their stages, the per-service
 * configuration in each hook's `hookDetails`, the role ECS invokes them with, and the alarms
 * that roll a deployment back.
 */
import { Annotations, Duration, type IResolvable, type IResolveContext, Names, Stack, Token, Tokenization } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { validateConfig } from './config-schema';
import type { GreenlightConfig, GreenlightHookFunctions } from './greenlight-hooks';
import { HOOKS, type HookName, LifecycleStage, defaultStages } from './hooks';

/** What ECS does when a hook has not answered in time. */
export enum HookTimeoutAction {
  ROLLBACK = 'ROLLBACK',
  CONTINUE = 'CONTINUE',
}

/** A hook's `timeoutConfiguration`. */
export interface HookTimeout {
  /** Whole minutes, 1 to 20160. */
  readonly timeout: Duration;
  /** @default HookTimeoutAction.ROLLBACK */
  readonly action?: HookTimeoutAction;
}

/** A stage, as Greenlight names it or as aws-cdk-lib's ECS module does (the same strings). */
export type HookStage = LifecycleStage | ecs.DeploymentLifecycleStage;

/** Settings of one hook on the service. */
export interface GreenlightHookOptions {
  /** @default - the function's default stages (docs/concepts.md) */
  readonly stages?: HookStage[];
  /**
   * This hook's configuration, merged over the construct's `config` with JSON Merge Patch; a
   * `null` is kept, so that it also removes the key from the function's own configuration.
   */
  readonly config?: GreenlightConfig;
  /** Other keys of `hookDetails`, for other tools. */
  readonly hookDetails?: { readonly [key: string]: unknown };
  /** @default - the construct's `timeout` */
  readonly timeout?: HookTimeout;
}

/** Alarms on the targets' 5xx answers, one per target group. */
export interface TargetGroupErrorAlarmOptions {
  readonly targetGroups: elbv2.IApplicationTargetGroup[];
  /** 5xx answers in one minute that set off the alarm. @default 5 */
  readonly threshold?: number;
  /** @default 1 */
  readonly evaluationPeriods?: number;
}

export interface GreenlightServiceHooksProps {
  readonly service: ecs.BaseService;
  /** `GreenlightHooks` in the same app, or `GreenlightHooks.fromPrefix(...)`. */
  readonly functions: GreenlightHookFunctions;
  /** Configuration for every hook, rendered as `hookDetails.greenlight`. @default - none */
  readonly config?: GreenlightConfig;
  /** Other keys of every hook's `hookDetails`. @default - none */
  readonly hookDetails?: { readonly [key: string]: unknown };
  /** Per hook: settings, or `false` to leave the function out. @default - all four, default stages */
  readonly hooks?: { readonly [K in HookName]?: GreenlightHookOptions | false };
  /** Every hook's `timeoutConfiguration`. @default - ECS's default (24 hours, roll back) */
  readonly timeout?: HookTimeout;
  /**
   * The service's deployment strategy, when it cannot be read from the service (set through an
   * override, for instance). @default - the service's `deploymentStrategy`
   */
  readonly strategy?: ecs.DeploymentStrategy;
  /** The role ECS assumes to invoke the hooks. @default - a role that may invoke the attached functions only */
  readonly invokeRole?: iam.IRole;
  /** Alarms that roll a deployment back when they go off during it or its bake time. */
  readonly alarms?: cloudwatch.IAlarm[];
  /** Alarms on the targets' 5xx answers, added to `alarms`. */
  readonly targetGroupErrorAlarms?: TargetGroupErrorAlarmOptions;
  /** @default ecs.AlarmBehavior.ROLLBACK_ON_ALARM */
  readonly alarmBehavior?: ecs.AlarmBehavior;
}

/** One hook as attached, with what the CDK's L2 cannot render. */
interface AttachedHook {
  readonly hook: HookName;
  readonly fn: lambda.IFunction;
  readonly roleArn: string;
  readonly stages: HookStage[];
  readonly hookDetails?: { [key: string]: unknown };
  readonly timeout?: HookTimeout;
}

export class GreenlightServiceHooks extends Construct {
  /** The role ECS assumes to invoke the hooks. */
  public readonly invokeRole: iam.IRole;
  /** The hooks attached, in order. */
  public readonly hooks: ReadonlyArray<{ readonly hook: HookName; readonly stages: HookStage[] }>;
  /** The alarms that roll a deployment back, including those created here. */
  public readonly alarms: cloudwatch.IAlarm[];

  constructor(scope: Construct, id: string, props: GreenlightServiceHooksProps) {
    super(scope, id);
    const service = props.service;
    const cfn = service.node.defaultChild as ecs.CfnService;

    const strategy = props.strategy ?? readStrategy(cfn);
    const withHooks: string[] = [
      ecs.DeploymentStrategy.BLUE_GREEN,
      ecs.DeploymentStrategy.CANARY,
      ecs.DeploymentStrategy.LINEAR,
    ];
    if (strategy === undefined || !withHooks.includes(strategy)) {
      throw new Error(
        `${service.node.path}: Greenlight's hooks need deploymentStrategy BLUE_GREEN, CANARY or LINEAR (found ${strategy ?? 'none'}); set it on the service, or pass strategy if it is set another way`,
      );
    }
    const progressive = strategy === ecs.DeploymentStrategy.CANARY || strategy === ecs.DeploymentStrategy.LINEAR;
    validateDetails(props.hookDetails, 'hookDetails');
    if (props.timeout) validateTimeout(props.timeout, 'timeout');
    // The configuration is merged over the function's own at run time: checked as a patch
    // (a check may override one the function defines without naming its type).
    if (props.config !== undefined) validateConfig(props.config, `${this.node.path} config`, { partial: true });

    const plans: Array<Omit<AttachedHook, 'roleArn'>> = [];
    for (const spec of HOOKS) {
      const options = props.hooks?.[spec.key];
      if (options === false) continue;
      const where = `hooks.${spec.key}`;
      const stages = options?.stages ?? defaultStages(spec.key, progressive);
      validateStages(stages, `${where}.stages`);
      validateDetails(options?.hookDetails, `${where}.hookDetails`);
      if (options?.timeout) validateTimeout(options.timeout, `${where}.timeout`);
      const config = composePatches(props.config, options?.config);
      if (config !== undefined && !isPlainObject(config)) {
        throw new Error(`${where}: the configuration must be a JSON object`);
      }
      if (config !== undefined) validateConfig(config, `${this.node.path} ${where}.config`, { partial: true });
      if (!hasChecks(config)) {
        Annotations.of(this).addWarningV2(
          `greenlight:noChecks:${spec.key}`,
          `${where}: no checks in this hook's configuration; it runs only what the function's own configuration has, and answers SUCCEEDED with "nothing was verified" when that has none either`,
        );
      }
      const extra = { ...props.hookDetails, ...options?.hookDetails };
      const details = config === undefined ? extra : { ...extra, greenlight: config };
      plans.push({
        hook: spec.key,
        fn: props.functions[spec.key],
        stages,
        hookDetails: Object.keys(details).length > 0 ? details : undefined,
        timeout: options?.timeout ?? props.timeout,
      });
    }
    if (plans.length === 0) throw new Error('every hook is turned off: attach at least one');

    if (props.invokeRole) {
      this.invokeRole = props.invokeRole;
    } else {
      // ECS invokes each hook with this role: the attached functions and nothing else, and
      // only on behalf of this account's services (aws:SourceAccount).
      const role = new iam.Role(this, 'InvokeRole', {
        description: `ECS assumes this role to invoke Greenlight's hooks for ${service.node.path}`,
        assumedBy: new iam.ServicePrincipal('ecs.amazonaws.com', {
          conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
        }),
      });
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'InvokeGreenlightHooks',
          actions: ['lambda:InvokeFunction'],
          resources: [...new Set(plans.map((p) => p.fn.functionArn))],
        }),
      );
      this.invokeRole = role;
    }

    const overrides = HookOverrides.of(cfn);
    const l2Stages = new Set<string>(Object.values(ecs.DeploymentLifecycleStage));
    for (const plan of plans) {
      // The L2 knows the hook; stages it has no name for, hookDetails and the timeout are
      // written by the override below.
      service.addLifecycleHook(
        new ecs.DeploymentLifecycleLambdaTarget(plan.fn, `${id}${plan.hook}`, {
          role: this.invokeRole,
          lifecycleStages: plan.stages.filter((s) => l2Stages.has(s)) as string[] as ecs.DeploymentLifecycleStage[],
        }),
      );
      overrides.add({ ...plan, roleArn: this.invokeRole.roleArn });
    }
    this.hooks = plans.map((p) => ({ hook: p.hook, stages: p.stages }));

    this.alarms = [...(props.alarms ?? [])];
    const alarmNames = this.alarms.map((a) => a.alarmName);
    const tgAlarms = props.targetGroupErrorAlarms;
    tgAlarms?.targetGroups.forEach((tg, i) => {
      // A name fixed at synthesis: the service then names the alarm without depending on it.
      const unique = Names.uniqueResourceName(this, { maxLength: 200, separator: '-', allowedSpecialCharacters: '-_' });
      const alarmName = `${unique}-target-group-${i + 1}-5xx`;
      this.alarms.push(
        new cloudwatch.Alarm(this, `TargetGroup${i + 1}Errors`, {
          alarmName,
          alarmDescription: `5xx answers from the targets of ${tg.node.path}; rolls back a deployment of ${service.node.path}`,
          metric: tg.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, {
            period: Duration.minutes(1),
            statistic: cloudwatch.Stats.SUM,
          }),
          threshold: tgAlarms.threshold ?? 5,
          evaluationPeriods: tgAlarms.evaluationPeriods ?? 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      alarmNames.push(alarmName);
    });
    if (this.alarms.length > 0) {
      service.enableDeploymentAlarms(alarmNames, {
        behavior: props.alarmBehavior ?? ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
      });
    }
  }
}

/**
 * Renders the service's `DeploymentConfiguration.LifecycleHooks` as the L2 does, adding to
 * Greenlight's entries their full stage list, `HookDetails` and `TimeoutConfiguration`. One
 * per service, however many `GreenlightServiceHooks` are attached to it.
 */
class HookOverrides {
  private static readonly byService = new WeakMap<ecs.CfnService, HookOverrides>();

  public static of(cfn: ecs.CfnService): HookOverrides {
    let o = HookOverrides.byService.get(cfn);
    if (!o) {
      o = new HookOverrides(cfn);
      HookOverrides.byService.set(cfn, o);
    }
    return o;
  }

  private readonly entries: AttachedHook[] = [];

  private constructor(cfn: ecs.CfnService) {
    const dc = cfn.deploymentConfiguration;
    if (dc === undefined || Tokenization.isResolvable(dc)) {
      throw new Error(`${cfn.node.path}: the service's deployment configuration is not one the ECS L2 rendered`);
    }
    const l2Hooks = (dc as ecs.CfnService.DeploymentConfigurationProperty).lifecycleHooks;
    cfn.addPropertyOverride(
      'DeploymentConfiguration.LifecycleHooks',
      new RenderedOnce((context) => this.render(l2Hooks, context)),
    );
  }

  public add(entry: AttachedHook): void {
    this.entries.push(entry);
  }

  /**
   * The L2's list is read unresolved (its lazy value is cached, so the targets are bound once),
   * and every value stays a token, to be resolved with the rest of the template.
   */
  private render(l2Hooks: unknown, context: IResolveContext): unknown[] {
    const raw = (Tokenization.isResolvable(l2Hooks) ? (l2Hooks as IResolvable).resolve(context) : l2Hooks) ?? [];
    if (!Array.isArray(raw)) throw new Error('the lifecycle hooks of the service are not a list');
    const hooks: Array<Record<string, unknown>> = raw.map((h) => pascalCase(h as Record<string, unknown>));
    const taken = new Set<number>();
    for (const entry of this.entries) {
      const i = raw.findIndex(
        (h, n) => !taken.has(n) && h.hookTargetArn === entry.fn.functionArn && h.roleArn === entry.roleArn,
      );
      if (i < 0) throw new Error(`Greenlight's ${entry.hook} hook is missing from the service's lifecycle hooks`);
      taken.add(i);
      hooks[i] = {
        ...hooks[i],
        LifecycleStages: entry.stages,
        ...(entry.hookDetails ? { HookDetails: entry.hookDetails } : {}),
        ...(entry.timeout
          ? {
              TimeoutConfiguration: {
                TimeoutInMinutes: entry.timeout.timeout.toMinutes(),
                Action: entry.timeout.action ?? HookTimeoutAction.ROLLBACK,
              },
            }
          : {}),
      };
    }
    return hooks;
  }
}

/** A value produced at synthesis, once (like the L2's own lazy list), and left out when empty. */
class RenderedOnce implements IResolvable {
  public readonly creationStack: string[] = [];
  private rendered?: unknown[];

  constructor(private readonly produce: (context: IResolveContext) => unknown[]) {}

  public resolve(context: IResolveContext): unknown[] | undefined {
    this.rendered ??= this.produce(context);
    return this.rendered.length > 0 ? this.rendered : undefined;
  }

  public toString(): string {
    return Token.asString(this);
  }
}

/** `hookTargetArn` → `HookTargetArn`; `timeoutConfiguration` one level down; `hookDetails` as is. */
function pascalCase(hook: Record<string, unknown>): Record<string, unknown> {
  const up = (k: string) => k.charAt(0).toUpperCase() + k.slice(1);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(hook)) {
    if (v === undefined) continue;
    out[up(k)] = k === 'timeoutConfiguration' && isPlainObject(v) ? pascalCase(v) : v;
  }
  return out;
}

function readStrategy(cfn: ecs.CfnService): string | undefined {
  const dc = cfn.deploymentConfiguration;
  if (dc === undefined || Tokenization.isResolvable(dc)) return undefined;
  const strategy = (dc as ecs.CfnService.DeploymentConfigurationProperty).strategy;
  return typeof strategy === 'string' ? strategy : undefined;
}

const RESERVED = ['greenlight', 'greenlightState', 'greenlightDecision'];

function validateDetails(details: { [key: string]: unknown } | undefined, where: string): void {
  if (details === undefined) return;
  if (!isPlainObject(details)) throw new Error(`${where} must be a JSON object`);
  for (const key of RESERVED) {
    if (key in details) {
      throw new Error(
        `${where}.${key}: Greenlight owns this key${key === 'greenlight' ? '; give the configuration as config' : ''}`,
      );
    }
  }
}

/** True when a configuration names at least one check that is not removed. */
function hasChecks(config: unknown): boolean {
  if (!isPlainObject(config)) return false;
  const checks = config.checks;
  if (isPlainObject(checks) && Object.values(checks).some((c) => c !== null)) return true;
  // Per-service settings may hold the checks.
  const services = config.services;
  return isPlainObject(services) && Object.values(services).some((o) => hasChecks(o));
}

function validateStages(stages: HookStage[], where: string): void {
  const known = new Set<string>(Object.values(LifecycleStage));
  if (stages.length === 0) throw new Error(`${where}: name at least one stage, or set the hook to false`);
  for (const s of stages) {
    if (!known.has(s)) throw new Error(`${where}: unknown stage "${s}"; expected one of: ${[...known].join(', ')}`);
  }
  if (new Set(stages).size !== stages.length) throw new Error(`${where}: a stage is named twice`);
}

function validateTimeout(t: HookTimeout, where: string): void {
  const minutes = t.timeout.toMinutes({ integral: false });
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 20160) {
    throw new Error(`${where}: a hook's timeout is a whole number of minutes from 1 to 20160`);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Two JSON Merge Patches (RFC 7386) as one: applying the result to a document gives what
 * applying `first`, then `second`, gives. A `null` in `second` is kept, so that it still
 * removes the key from the function's own configuration at run time.
 */
export function composePatches(first: unknown, second: unknown): unknown {
  if (second === undefined) return first;
  if (!isPlainObject(second) || !isPlainObject(first)) return second;
  const out: Record<string, unknown> = { ...first };
  for (const [k, v] of Object.entries(second)) {
    out[k] = v === null ? null : composePatches(out[k], v);
  }
  return out;
}
