/**
 * Where the functions' code comes from: built from the Cargo workspace at synthesis, or the
 * output of an earlier `cargo lambda build --release --arm64`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { RustFunction, type BundlingOptions } from 'cargo-lambda-cdk';
import type { Construct } from 'constructs';

/** The workspace manifest: `cdk/lib/` → the repository root. */
export const WORKSPACE_MANIFEST = path.resolve(__dirname, '..', '..', 'Cargo.toml');

/** Options every Greenlight function is created with, besides its code. */
export type GreenlightFunctionOptions = Omit<lambda.FunctionOptions, 'architecture'>;

export abstract class GreenlightCode {
  /**
   * Build each function from the Cargo workspace with `cargo lambda build --release --arm64`
   * (cargo-lambda-cdk's `RustFunction`: locally when cargo-lambda is installed, otherwise in
   * its Docker image). Nothing is built when bundling is skipped for the stack
   * (`-c aws:cdk:bundling-stacks=[]`), which is how tests and the offline synth run.
   */
  public static fromWorkspace(manifestPath: string = WORKSPACE_MANIFEST, bundling?: BundlingOptions): GreenlightCode {
    return new WorkspaceCode(manifestPath, bundling);
  }

  /**
   * Use binaries built beforehand: `lambdaDir` is the `target/lambda` directory of
   * `cargo lambda build --release --arm64`, holding `<binary>/bootstrap` for each function.
   */
  public static fromBuildOutput(lambdaDir: string): GreenlightCode {
    return new BuildOutputCode(lambdaDir);
  }

  /**
   * Use the zips `make release` builds, uploaded to S3: `<keyPrefix><binary>.zip` in `bucket`
   * (`before-install.zip`, ...), each holding the function's `bootstrap`.
   */
  public static fromBucket(bucket: s3.IBucket, keyPrefix: string): GreenlightCode {
    return new BucketCode(bucket, keyPrefix);
  }

  /** @internal */
  public abstract _createFunction(
    scope: Construct,
    id: string,
    binary: string,
    options: GreenlightFunctionOptions,
  ): lambda.Function;
}

class WorkspaceCode extends GreenlightCode {
  constructor(
    private readonly manifestPath: string,
    private readonly bundling?: BundlingOptions,
  ) {
    super();
  }

  public _createFunction(scope: Construct, id: string, binary: string, options: GreenlightFunctionOptions) {
    return new RustFunction(scope, id, {
      ...options,
      manifestPath: this.manifestPath,
      binaryName: binary,
      // RustFunction's default runtime; named so that the template does not depend on it.
      runtime: 'provided.al2023',
      architecture: lambda.Architecture.ARM_64,
      bundling: this.bundling,
    });
  }
}

class BuildOutputCode extends GreenlightCode {
  constructor(private readonly lambdaDir: string) {
    super();
  }

  public _createFunction(scope: Construct, id: string, binary: string, options: GreenlightFunctionOptions) {
    const dir = path.resolve(this.lambdaDir, binary);
    if (!fs.existsSync(path.join(dir, 'bootstrap'))) {
      throw new Error(
        `${path.join(dir, 'bootstrap')} does not exist: run \`cargo lambda build --release --arm64\` in the repository root first, or leave out lambdaDir to build during synthesis`,
      );
    }
    return new lambda.Function(scope, id, {
      ...options,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(dir),
    });
  }
}

class BucketCode extends GreenlightCode {
  constructor(
    private readonly bucket: s3.IBucket,
    private readonly keyPrefix: string,
  ) {
    super();
  }

  public _createFunction(scope: Construct, id: string, binary: string, options: GreenlightFunctionOptions) {
    return new lambda.Function(scope, id, {
      ...options,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromBucket(this.bucket, `${this.keyPrefix}${binary}.zip`),
    });
  }
}
