"""Data-parallel training: several processes (launched by `emotune train --nproc-per-node`, by
torchrun's environment, or on two "hosts" in their own network namespaces) give the same per-step
losses, evaluations and final weights as one process at the same global batch; a run stopped with
Ctrl-C resumes to the same weights; a missing master, a wrong world size, differing arguments and a
dead rank each end every rank with one clear error line, and nothing hangs. Over the network only ranks
holding the run's secret meet; on one host the rendezvous listens on loopback alone."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from harness import EMOTUNE, GOEMOTIONS, first_lines, init_model, main, wait_for_lines  # noqa: E402

from safetensors.torch import load_file  # noqa: E402

TINY = dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(run_dir):
    """[(step, loss, grad_norm)] and [(step, eval)] from metrics.jsonl."""
    steps, evals = [], []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if "eval" in j:
                evals.append((j["step"], j["eval"]))
            else:
                steps.append((j["step"], j["loss"], j["grad_norm"]))
    return steps, evals


class Case(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="emotune_dist_")
        cls.model = init_model(os.path.join(cls.tmp, "model"), **TINY)
        # 57 rows in batches of 7: the epoch's last batch holds 1 row, so 2 of 3 ranks get none of it.
        cls.train_tsv = first_lines(os.path.join(GOEMOTIONS, "train.tsv"), 57, os.path.join(cls.tmp, "train.tsv"))
        cls.dev_tsv = first_lines(os.path.join(GOEMOTIONS, "dev.tsv"), 31, os.path.join(cls.tmp, "dev.tsv"))
        cls.reference = {}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def args(self, out, *extra, steps=12, dropout="0", eval_every="6"):
        return [EMOTUNE, "train", "--model", self.model, "--train-file", self.train_tsv, "--dev-file", self.dev_tsv,
                "--batch-size", "7", "--grad-accum", "2", "--max-steps", str(steps), "--dropout", dropout,
                "--log-every", "1", "--eval-every", eval_every, "--threads", "1", "--overwrite", "--output", out, *extra]

    def train(self, out, *extra, env=None, timeout=180):
        p = subprocess.run(self.args(out, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env={**os.environ, **(env or {})})
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return out

    def single(self, *extra):
        """The one-process run of these arguments (made once)."""
        key = extra
        if key not in self.reference:
            self.reference[key] = self.train(self.path("single-" + str(len(self.reference))), *extra)
        return self.reference[key]

    def assert_same_run(self, a, b, weights_rtol=2e-5):
        sa, ea = losses(a)
        sb, eb = losses(b)
        self.assertEqual([s for s, _, _ in sa], [s for s, _, _ in sb])
        for (step, la, ga), (_, lb, gb) in zip(sa, sb):
            self.assertLess(abs(la - lb), 1e-5 * abs(la), f"loss at step {step}: {la} vs {lb}")
            self.assertLess(abs(ga - gb), 1e-4 * abs(ga) + 1e-7, f"grad norm at step {step}: {ga} vs {gb}")
        self.assertEqual([s for s, _ in ea], [s for s, _ in eb])
        for (step, x), (_, y) in zip(ea, eb):
            self.assertLess(abs(x["loss"] - y["loss"]), 1e-5 * abs(x["loss"]), f"eval loss at step {step}")
            self.assertAlmostEqual(x["macro"]["f1"], y["macro"]["f1"], places=6, msg=f"eval macro-F1 at step {step}")
        wa = load_file(os.path.join(a, "model.safetensors"))
        wb = load_file(os.path.join(b, "model.safetensors"))
        self.assertEqual(sorted(wa), sorted(wb))
        for name in wa:
            scale = wa[name].abs().max().item() + 1e-12
            diff = (wa[name] - wb[name]).abs().max().item()
            self.assertLess(diff, weights_rtol * scale + 1e-7, f"{name}: max difference {diff} (scale {scale})")


class SameResult(Case):
    def test_two_workers_match_one_process(self):
        two = self.train(self.path("two"), "--nproc-per-node", "2")
        self.assert_same_run(self.single(), two)
        with open(os.path.join(two, "training_args.json")) as f:
            args = json.load(f)
        self.assertEqual(args["world_size"], 2)
        self.assertEqual(args["batch_size"], 7)
        self.assertTrue(os.path.isfile(os.path.join(two, "best", "model.safetensors")))

    def test_three_workers_with_empty_shares_match(self):
        # batch 7 over 3 ranks: 3/2/2 rows, and the epoch's last 1-row batch leaves ranks 1 and 2 empty
        three = self.train(self.path("three"), "--nproc-per-node", "3")
        self.assert_same_run(self.single(), three)

    def test_other_objectives_match(self):
        for extra in (("--loss", "weighted-bce"), ("--objective", "single-label")):
            with self.subTest(extra=extra):
                two = self.train(self.path("two-" + extra[1]), "--nproc-per-node", "2", *extra)
                self.assert_same_run(self.single(*extra), two)

    def test_torchrun_environment(self):
        """Processes started as torchrun starts them (no launcher) join and train together."""
        out, port = self.path("env"), free_port()
        procs = []
        for rank in range(2):
            env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            procs.append(subprocess.Popen(self.args(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for p in procs:
            _, err = p.communicate(timeout=180)
            self.assertEqual(p.returncode, 0, err.decode())
        self.assert_same_run(self.single(), out)


class Resume(Case):
    def test_stopped_run_resumes_to_the_same_weights(self):
        """With dropout on, so that every rank's random state must come back too."""
        extra = ("--nproc-per-node", "2", "--save-every", "3")
        whole = self.path("whole")
        p = subprocess.run(self.args(whole, *extra, steps=300, dropout="0.1", eval_every="none"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode())

        out = self.path("stopped")
        p = subprocess.Popen(self.args(out, *extra, steps=300, dropout="0.1", eval_every="none"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_lines(os.path.join(out, "metrics.jsonl"), 5, 120)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, err.decode())
        saved = sorted(os.listdir(os.path.join(out, "checkpoints")))
        self.assertTrue(saved, "no checkpoint after the stop")
        with open(os.path.join(out, "checkpoints", saved[-1], "trainer_state.json")) as f:
            state = json.load(f)
        self.assertEqual(state["world_size"], 2)
        self.assertEqual(len(state["rank_rng_states"]), 2)
        self.assertNotEqual(state["rank_rng_states"][0], state["rank_rng_states"][1])
        self.assertLess(state["step"], 300)

        resumed = [a for a in self.args(out, *extra, steps=300, dropout="0.1", eval_every="none") if a != "--overwrite"] + ["--resume"]
        p = subprocess.run(resumed, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        sa, _ = losses(whole)
        sb, _ = losses(out)
        self.assertEqual(sa, sb)  # the same floats: the same shares, the same dropout draws
        wa = load_file(os.path.join(whole, "model.safetensors"))
        wb = load_file(os.path.join(out, "model.safetensors"))
        for name in wa:
            self.assertTrue((wa[name] == wb[name]).all(), name)


class Failures(Case):
    def start(self, rank, world, port, out, *extra, timeout_s=3):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        return subprocess.Popen(self.args(out, "--dist-timeout", str(timeout_s), *extra, steps=400), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def assert_one_error(self, p, *needles, within=30):
        t0 = time.time()
        _, err = p.communicate(timeout=within)
        err = err.decode()
        self.assertNotEqual(p.returncode, 0, err)
        lines = [l for l in err.splitlines() if "error" in l]
        self.assertEqual(len(lines), 1, err)
        for n in needles:
            self.assertIn(n, lines[0])
        return time.time() - t0

    def test_unreachable_master(self):
        p = self.start(1, 2, free_port(), self.path("lonely"))
        self.assert_one_error(p, "rank 1 of 2", "cannot reach the master at 127.0.0.1")

    def test_wrong_world_size(self):
        port = free_port()
        a = self.start(0, 2, port, self.path("ws"))
        time.sleep(0.3)
        b = self.start(1, 3, port, self.path("ws"))
        self.assert_one_error(b, "WORLD_SIZE=3 here but 2 on rank 0")
        self.assert_one_error(a, "rank 0 of 2", "only 1 of WORLD_SIZE=2 ranks joined")

    def test_ranks_with_different_arguments(self):
        port = free_port()
        a = self.start(0, 2, port, self.path("args"))
        b = self.start(1, 2, port, self.path("args"), "--lr", "1e-4")
        self.assert_one_error(b, "the training setup is", "on rank 0")
        self.assert_one_error(a, "rank 0")

    def test_dead_rank_stops_the_others(self):
        out, port = self.path("dead"), free_port()
        a = self.start(0, 2, port, out, timeout_s=60)
        b = self.start(1, 2, port, out, timeout_s=60)
        wait_for_lines(os.path.join(out, "metrics.jsonl"), 1, 60)
        b.kill()
        b.wait()
        took = self.assert_one_error(a, "rank 0 of 2", "another rank stopped", within=30)
        self.assertLess(took, 15)  # a closed connection is noticed at once, not after --dist-timeout

    def test_dead_worker_ends_the_launch(self):
        out = self.path("dead-launch")
        p = subprocess.Popen(self.args(out, "--nproc-per-node", "2", steps=100000), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        wait_for_lines(os.path.join(out, "metrics.jsonl"), 1, 60)
        workers = subprocess.run(["pgrep", "-P", str(p.pid)], stdout=subprocess.PIPE).stdout.split()
        self.assertEqual(len(workers), 2)
        os.kill(int(workers[1]), signal.SIGKILL)
        _, err = p.communicate(timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("was killed by signal 9", err.decode())
        self.assertIn("another rank stopped", err.decode())
        self.assertEqual(subprocess.run(["pgrep", "-P", str(p.pid)], stdout=subprocess.PIPE).stdout, b"")

    def test_launcher_flags_need_a_launch(self):
        for args, needle in ((["--nnodes", "2"], "go with --nproc-per-node"),
                             (["--nproc-per-node", "1", "--nnodes", "2"], "needs --master-addr"),
                             (["--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2", "--master-addr", "x"],
                              "--node-rank 2 is outside 0..1")):
            p = subprocess.run(self.args(self.path("flags"), *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(needle, p.stderr.decode())


def can_make_namespaces():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = f"emotune_probe_{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", name], stderr=subprocess.DEVNULL).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name])
    return ok


@unittest.skipUnless(can_make_namespaces(), "needs root and `ip netns` to make two hosts")
class TwoHosts(Case):
    """Two network namespaces joined by a veth pair: each rank sees only its own address and the link."""

    def setUp(self):
        tag = os.getpid() % 100000
        self.ns = [f"emotune_a{tag}", f"emotune_b{tag}"]
        self.addr = ["10.213.77.1", "10.213.77.2"]
        veth = [f"emo{tag}a", f"emo{tag}b"]
        self.addCleanup(lambda: [subprocess.run(["ip", "netns", "del", n], stderr=subprocess.DEVNULL) for n in self.ns])
        for n in self.ns:
            subprocess.run(["ip", "netns", "add", n], check=True)
        subprocess.run(["ip", "link", "add", veth[0], "type", "veth", "peer", "name", veth[1]], check=True)
        for n, v, a in zip(self.ns, veth, self.addr):
            subprocess.run(["ip", "link", "set", v, "netns", n], check=True)
            subprocess.run(["ip", "-n", n, "addr", "add", a + "/24", "dev", v], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", v, "up"], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
        self.secret = self.secret_file("secret", "a-shared-secret-of-this-run-0123456789")

    def secret_file(self, name, content):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(content + "\n")
        os.chmod(path, 0o600)
        return path

    def node(self, node, out, *extra, port="29561"):
        """Node `node`'s launcher, in its namespace, started."""
        cmd = ["ip", "netns", "exec", self.ns[node], *self.args(out, "--nproc-per-node", "1", "--nnodes", "2",
                                                                "--node-rank", str(node), "--master-addr", self.addr[0],
                                                                "--master-port", port, *extra)]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_two_hosts_match_one_process(self):
        out = self.path("hosts")
        procs = [self.node(n, out, "--dist-secret-file", self.secret) for n in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=180)
            self.assertEqual(p.returncode, 0, err.decode())
        self.assert_same_run(self.single(), out)

    def test_a_host_without_the_secret_is_refused(self):
        """A rank whose secret differs is refused by rank 0 before it reads or writes a key; a host with no
        secret at all does not start."""
        other = self.secret_file("other", "another-secret-altogether-0123456789")
        a = self.node(0, self.path("refused"), "--dist-secret-file", self.secret, "--dist-timeout", "8", port="29563")
        b = self.node(1, self.path("refused"), "--dist-secret-file", other, "--dist-timeout", "8", port="29563")
        _, err_b = b.communicate(timeout=60)
        _, err_a = a.communicate(timeout=60)
        self.assertNotEqual(b.returncode, 0)
        self.assertIn("rank 0 refused this rank: its secret differs (give every rank the same --dist-secret-file",
                      err_b.decode())
        self.assertNotEqual(a.returncode, 0)
        self.assertIn("only 1 of WORLD_SIZE=2 ranks joined", err_a.decode())
        p = self.node(1, self.path("nosecret"), port="29564")
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--nnodes 2: ranks on several hosts need a shared secret: --dist-secret-file", err.decode())

    def test_one_host_listens_on_loopback_alone(self):
        """Two workers on host A meet at 127.0.0.1: host B cannot reach the rendezvous port on A's address,
        while A itself can."""
        out, port = self.path("loopback"), 29565
        cmd = ["ip", "netns", "exec", self.ns[0], *self.args(out, "--nproc-per-node", "2", "--master-port", str(port),
                                                             steps=100000)]
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (run.kill(), run.communicate()))
        wait_for_lines(os.path.join(out, "metrics.jsonl"), 1, 120)
        probe = "import socket,sys; s=socket.socket(); s.settimeout(3); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))"
        def reach(ns, addr):
            return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", probe, addr, str(port)],
                                  timeout=30).returncode == 0
        self.assertTrue(reach(self.ns[0], "127.0.0.1"))
        self.assertFalse(reach(self.ns[1], self.addr[0]))
        self.assertFalse(reach(self.ns[0], self.addr[0]))

    def test_host_without_a_route_to_the_master(self):
        p = subprocess.run(["ip", "netns", "exec", self.ns[1],
                            *self.args(self.path("noroute"), "--nproc-per-node", "1", "--nnodes", "2", "--node-rank",
                                       "1", "--master-addr", "10.213.78.1", "--master-port", "29562",
                                       "--dist-timeout", "3", "--dist-secret-file", self.secret)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("10.213.78.1", p.stderr.decode())


if __name__ == "__main__":
    main()
