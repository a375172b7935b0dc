/** Greenlight's CDK constructs: import these into your own app. */
export * from './code';
export * from './greenlight-hooks';
export * from './hooks';
export * from './hooks-stack';
export * from './config-schema';
export * from './monitoring';
export * from './release-stack';
export * from './version';
export * from './service-hooks';
export * from './examples/ecs-blue-green-example';
export * from './examples/lambda-canary-example';
