/** Dockerfile instructions on a container config, as docker commit -c applies them. */
import test from "ava";
import { applyChanges } from "./config-changes.js";

test("applyChanges() applies each instruction docker commit -c takes", (t) => {
  const before = { Env: ["A=1"], Labels: { x: "1" } };
  const after = applyChanges(before, [
    'CMD ["/bin/sh", "-c", "true"]',
    "ENTRYPOINT /entry",
    'ENV A=2 B="two words"',
    "ENV C 3",
    "LABEL y=2",
    "EXPOSE 80 53/udp",
    "VOLUME /data",
    "USER nobody",
    "WORKDIR /srv",
    "ONBUILD RUN true",
  ]);
  t.deepEqual(after, {
    Cmd: ["/bin/sh", "-c", "true"],
    Entrypoint: ["/bin/sh", "-c", "/entry"],
    Env: ["A=2", "B=two words", "C=3"],
    Labels: { x: "1", y: "2" },
    ExposedPorts: { "80/tcp": {}, "53/udp": {} },
    Volumes: { "/data": {} },
    User: "nobody",
    WorkingDir: "/srv",
    OnBuild: ["RUN true"],
  });
  t.deepEqual(before, { Env: ["A=1"], Labels: { x: "1" } }, "the input is not modified");
});

test("applyChanges() refuses what it cannot read with ERR_INVALID_CHANGE", (t) => {
  for (const bad of ["RUN true", "CMD [not json", "EXPOSE eighty", "ENV", "CMD [1, 2]"])
    t.throws(() => applyChanges({}, [bad]), { code: "ERR_INVALID_CHANGE" }, bad);
});
