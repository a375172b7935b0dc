/**
 * Acknowledging cdk-nag findings with a reason, through CDK's own `Validations` API (the one
 * cdk-nag 3 reads), so this library does not depend on cdk-nag at run time.
 */
import { CfnResource, Stack, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/** Acknowledges one cdk-nag rule (or one finding, `Rule[finding]`) on a construct and below. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Acknowledges `AwsSolutions-IAM5` for every wildcard resource of a statement, giving the
 * statement's own reason. The finding id is the resource as cdk-nag flattens it:
 * `Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:service/*`.
 */
export function acknowledgeWildcards(scope: IConstruct, statement: iam.PolicyStatement, reason: string): void {
  const stack = Stack.of(scope);
  for (const resource of statement.resources) {
    const flat = flatten(stack.resolve(resource));
    if (flat.includes('*')) {
      acknowledge(scope, `AwsSolutions-IAM5[Resource::${flat}]`, reason);
    }
  }
}

/** The same flattening cdk-nag applies to a resolved CloudFormation value. */
function flatten(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/}/g, '>');
  if (typeof node === 'object' && node !== null) {
    const o = node as Record<string, unknown>;
    if (o['Fn::Join']) {
      const [delimiter, items] = o['Fn::Join'] as [string, unknown[]];
      return items.map(flatten).join(delimiter);
    }
    if (o['Fn::Sub']) return flatten(o['Fn::Sub']);
    if (o['Fn::GetAtt']) {
      const [resource, attribute] = o['Fn::GetAtt'] as [unknown, unknown];
      return `<${flatten(resource)}.${flatten(attribute)}>`;
    }
    if (o['Fn::ImportValue']) return flatten(o['Fn::ImportValue']);
    if (o.Ref) return `<${flatten(o.Ref)}>`;
  }
  return JSON.stringify(node);
}

/**
 * Skips one checkov check on a resource, with the reason, in the template resource's
 * `Metadata.checkov.skip` (the only place checkov reads; cdk-nag acknowledgments do not reach
 * it). `scope` is the CloudFormation resource or an L2 construct whose default child it is.
 */
export function skipCheckov(scope: IConstruct, id: string, reason: string): void {
  const resource = (CfnResource.isCfnResource(scope) ? scope : scope.node.defaultChild) as CfnResource | undefined;
  if (!resource || !CfnResource.isCfnResource(resource)) {
    throw new Error(`${scope.node.path}: no CloudFormation resource to skip ${id} on`);
  }
  const current = (resource.getMetadata('checkov') as { skip?: Array<{ id: string; comment: string }> }) ?? {};
  const skip = (current.skip ?? []).filter((s) => s.id !== id);
  resource.addMetadata('checkov', { ...current, skip: [...skip, { id, comment: reason }] });
}
