/**
 * The four Greenlight functions, the ECS lifecycle stages, and the names everything is given.
 */

/** The prefix of every resource name unless the app is told otherwise (`-c prefix=...`). */
export const DEFAULT_PREFIX = 'greenlight';

/** The alias each function has, pointing at the version deployed last. */
export const LIVE_ALIAS = 'live';

/** The CloudWatch namespace of the decision metrics unless told otherwise. */
export const DEFAULT_METRICS_NAMESPACE = 'Greenlight';

/** The four hooks, by the key used in props. */
export type HookName = 'beforeInstall' | 'afterInstall' | 'beforeAllowTraffic' | 'afterAllowTraffic';

/**
 * ECS lifecycle stages that accept a Lambda hook. The CDK's `ecs.DeploymentLifecycleStage`
 * lacks `PRE_PRODUCTION_TRAFFIC_SHIFT`; this list is the one the functions accept.
 */
export enum LifecycleStage {
  RECONCILE_SERVICE = 'RECONCILE_SERVICE',
  PRE_SCALE_UP = 'PRE_SCALE_UP',
  POST_SCALE_UP = 'POST_SCALE_UP',
  TEST_TRAFFIC_SHIFT = 'TEST_TRAFFIC_SHIFT',
  POST_TEST_TRAFFIC_SHIFT = 'POST_TEST_TRAFFIC_SHIFT',
  PRE_PRODUCTION_TRAFFIC_SHIFT = 'PRE_PRODUCTION_TRAFFIC_SHIFT',
  PRODUCTION_TRAFFIC_SHIFT = 'PRODUCTION_TRAFFIC_SHIFT',
  POST_PRODUCTION_TRAFFIC_SHIFT = 'POST_PRODUCTION_TRAFFIC_SHIFT',
}

export interface HookSpec {
  /** The key in props: `beforeInstall`, ... */
  readonly key: HookName;
  /** The Cargo binary, and the last part of the function name: `before-install`, ... */
  readonly binary: string;
  /** The CloudFormation output with the function's ARN. */
  readonly outputName: string;
  /** Construct id of the function. */
  readonly constructId: string;
}

export const HOOKS: readonly HookSpec[] = [
  { key: 'beforeInstall', binary: 'before-install', outputName: 'BeforeInstallHookArn', constructId: 'BeforeInstall' },
  { key: 'afterInstall', binary: 'after-install', outputName: 'AfterInstallHookArn', constructId: 'AfterInstall' },
  {
    key: 'beforeAllowTraffic',
    binary: 'before-allow-traffic',
    outputName: 'BeforeAllowTrafficHookArn',
    constructId: 'BeforeAllowTraffic',
  },
  {
    key: 'afterAllowTraffic',
    binary: 'after-allow-traffic',
    outputName: 'AfterAllowTrafficHookArn',
    constructId: 'AfterAllowTraffic',
  },
];

/** The output with the ARN of the role ECS assumes to invoke the hooks. */
export const INVOKE_ROLE_OUTPUT = 'EcsBlueGreenDeployRoleArn';

/**
 * The stages each function is attached to by default. After-allow-traffic also runs at every
 * `PRODUCTION_TRAFFIC_SHIFT` step when the strategy is `CANARY` or `LINEAR`.
 */
export function defaultStages(hook: HookName, progressive: boolean): LifecycleStage[] {
  switch (hook) {
    case 'beforeInstall':
      return [LifecycleStage.PRE_SCALE_UP];
    case 'afterInstall':
      return [LifecycleStage.POST_SCALE_UP];
    case 'beforeAllowTraffic':
      return [LifecycleStage.TEST_TRAFFIC_SHIFT];
    case 'afterAllowTraffic':
      return progressive
        ? [LifecycleStage.PRODUCTION_TRAFFIC_SHIFT, LifecycleStage.POST_PRODUCTION_TRAFFIC_SHIFT]
        : [LifecycleStage.POST_PRODUCTION_TRAFFIC_SHIFT];
  }
}

/** `greenlight-before-install`, ... */
export function functionName(prefix: string, hook: HookSpec): string {
  return `${prefix}-${hook.binary}`;
}

/**
 * Checks a prefix: lower-case letters, digits and hyphens, starting with a letter, at most 32
 * characters, so that `<prefix>-before-allow-traffic` stays within Lambda's 64 and the role
 * name within IAM's 64.
 */
export function validatePrefix(prefix: string): string {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(prefix) || prefix.endsWith('-')) {
    throw new Error(
      `invalid prefix "${prefix}": use 1 to 32 lower-case letters, digits or hyphens, starting with a letter and not ending with a hyphen`,
    );
  }
  return prefix;
}
