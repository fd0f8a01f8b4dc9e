/**
 * The wire: containerd's `containerd.services.snapshots.v1.Snapshots` gRPC
 * service over a unix socket, each call handed to a {@link Snapshotter}.
 * The definitions are this folder's `proto/*.proto`, loaded at run time
 * from the source tree (tsc does not copy them, the package ships `src/`).
 *
 * Errors go back with the gRPC status containerd's errdefs maps to its
 * classes: NotFound, AlreadyExists, FailedPrecondition, InvalidArgument;
 * anything else is Unknown with the message, and is logged.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  NotSupportedError,
} from "../../errors.js";
import type { MountSpec } from "../../graphdriver/driver.js";
import type { Kind } from "./metadata.js";
import { isRequestError, type SnapshotInfo, type Snapshotter } from "./snapshotter.js";

/** The folder of the `.proto` files, in the source tree beside `dist/`. */
export const PROTO_DIR = fileURLToPath(new URL("../../../../src/serve/containerd/proto/", import.meta.url));

/** The service's full name, as containerd's proxy plugin calls it. */
export const SERVICE = "containerd.services.snapshots.v1.Snapshots";

/** Loads the service definition from {@link PROTO_DIR}. */
export function loadService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync("snapshots.proto", {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } };
  };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

interface WireTimestamp {
  seconds: number;
  nanos: number;
}

interface WireInfo {
  name: string;
  parent: string;
  kind: string;
  createdAt: WireTimestamp | null;
  updatedAt: WireTimestamp | null;
  labels: Record<string, string>;
}

const KIND_TO_WIRE: Record<Kind, string> = { view: "VIEW", active: "ACTIVE", committed: "COMMITTED" };

function timestamp(ms: number): WireTimestamp {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function wireInfo(i: SnapshotInfo): WireInfo {
  return {
    name: i.name,
    parent: i.parent,
    kind: KIND_TO_WIRE[i.kind],
    createdAt: timestamp(i.created),
    updatedAt: timestamp(i.updated),
    labels: i.labels,
  };
}

function wireMounts(mounts: MountSpec[]): object {
  return { mounts: mounts.map((m) => ({ type: m.type, source: m.source, target: "", options: m.options })) };
}

/** The gRPC status for an error; containerd's errdefs turns it back into its class. */
export function statusOf(err: unknown): grpc.status {
  if (err instanceof NotFoundError) return grpc.status.NOT_FOUND;
  if (err instanceof AlreadyExistsError) return grpc.status.ALREADY_EXISTS;
  if (err instanceof FailedPreconditionError) return grpc.status.FAILED_PRECONDITION;
  if (err instanceof InvalidArgumentError) return grpc.status.INVALID_ARGUMENT;
  if (err instanceof NotSupportedError) return grpc.status.UNIMPLEMENTED;
  if ((err as { code?: string })?.code === "ERR_INVALID_FILTER") return grpc.status.INVALID_ARGUMENT;
  return grpc.status.UNKNOWN;
}

type Unary = (call: grpc.ServerUnaryCall<Record<string, unknown>, object>, cb: grpc.sendUnaryData<object>) => void;

/** The service's handlers over `s`. */
export function handlers(s: Snapshotter, log: (line: string) => void): grpc.UntypedServiceImplementation {
  const fail = (method: string, err: unknown): Partial<grpc.StatusObject> => {
    if (!isRequestError(err)) log(`${method}: ${(err as Error)?.message ?? String(err)}`);
    return { code: statusOf(err), details: (err as Error)?.message ?? String(err) };
  };
  const unary =
    <R>(method: string, fn: (req: R, call: grpc.ServerUnaryCall<R, object>) => Promise<object>): Unary =>
    (call, cb) => {
      fn(call.request as R, call as unknown as grpc.ServerUnaryCall<R, object>).then(
        (res) => cb(null, res),
        (err: unknown) => cb(fail(method, err)),
      );
    };
  type KeyReq = { key: string; parent: string; labels: Record<string, string> };
  return {
    Prepare: unary<KeyReq>("Prepare", async (r) => wireMounts(await s.prepare(r.key, r.parent, r.labels ?? {}))),
    View: unary<KeyReq>("View", async (r) => wireMounts(await s.view(r.key, r.parent, r.labels ?? {}))),
    Mounts: unary<{ key: string }>("Mounts", async (r) => wireMounts(await s.mounts(r.key))),
    Commit: unary<{ name: string; key: string; labels: Record<string, string> }>("Commit", async (r) => {
      await s.commit(r.name, r.key, r.labels ?? {});
      return {};
    }),
    Remove: unary<{ key: string }>("Remove", async (r) => {
      await s.remove(r.key);
      return {};
    }),
    Stat: unary<{ key: string }>("Stat", async (r) => ({ info: wireInfo(s.stat(r.key)) })),
    Update: unary<{ info: WireInfo | null; updateMask: { paths: string[] } | null }>("Update", async (r) => {
      if (!r.info)
        throw new InvalidArgumentError("ERR_INVALID_ARGUMENT", "Cannot update snapshot: no info in the request");
      const info = await s.update(r.info.name, r.info.labels ?? {}, r.updateMask?.paths ?? []);
      return { info: wireInfo(info) };
    }),
    Usage: unary<{ key: string }>("Usage", async (r, call) => {
      const abort = new AbortController();
      call.on("cancelled", () => abort.abort());
      return s.usage(r.key, abort.signal);
    }),
    Cleanup: unary<object>("Cleanup", async () => {
      await s.cleanup();
      return {};
    }),
    List: (call: grpc.ServerWritableStream<{ filters: string[] }, object>) => {
      try {
        const infos = s.list(call.request.filters ?? []);
        // containerd's own service sends batches of 100.
        for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100).map(wireInfo) });
        call.end();
      } catch (err) {
        call.emit("error", fail("List", err));
      }
    },
  };
}
