/**
 * The peers strata is measured against, by name.
 *
 * @module
 */
import type { PeerName } from "../options.js";
import { ContainerdPeer } from "./containerd.js";
import { DockerPeer } from "./docker.js";
import type { Peer } from "./peer.js";
import { TarPeer } from "./tar.js";
import { UmociPeer } from "./umoci.js";

export type { Peer };

/** A new instance of the named peer. */
export function makePeer(name: PeerName): Peer {
  switch (name) {
    case "tar":
      return new TarPeer();
    case "docker":
      return new DockerPeer();
    case "umoci":
      return new UmociPeer();
    case "containerd":
      return new ContainerdPeer();
  }
}
