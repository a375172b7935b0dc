/**
 * The stack a platform team deploys once per account and region: the four hooks and the role
 * ECS invokes them with, with their ARNs as outputs (for ecspresso's `cfn_output`).
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { GreenlightHooks, type GreenlightHooksProps } from './greenlight-hooks';
import { HOOKS, INVOKE_ROLE_OUTPUT } from './hooks';

export interface GreenlightHooksStackProps extends StackProps, GreenlightHooksProps {}

export class GreenlightHooksStack extends Stack {
  public readonly hooks: GreenlightHooks;

  constructor(scope: Construct, id: string, props: GreenlightHooksStackProps = {}) {
    super(scope, id, props);
    this.hooks = new GreenlightHooks(this, 'Hooks', props);

    HOOKS.forEach((spec, i) => {
      new CfnOutput(this, spec.outputName, {
        description: `ARN of Greenlight's ${spec.binary} function (HookTargetArn)`,
        value: this.hooks.functions[i].functionArn,
      });
    });
    new CfnOutput(this, INVOKE_ROLE_OUTPUT, {
      description: 'ARN of the role ECS assumes to invoke the hooks (RoleArn of each lifecycle hook)',
      value: this.hooks.invokeRole.roleArn,
    });
  }
}
