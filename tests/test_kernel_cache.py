"""The private kernel-source cache: refuses unsafe directories, never follows planted symlinks, executes only
bytes that match their hash, survives interrupted writes; and the Triton loading path still JITs through it."""

import inspect
import os
import stat

import pytest

from tpjax.codegen import kernel_cache as KC

SOURCE = "def answer():\n    return 41 + 1\n"


@pytest.fixture
def gen_dir(tmp_path, monkeypatch):
    d = tmp_path / "gen"
    monkeypatch.setenv(KC.ENV_VAR, str(d))
    return d


def final_path(d, source=SOURCE):
    return d / (KC.digest(source) + ".py")


def test_created_private_and_loads(gen_dir):
    old = os.umask(0o022)
    try:
        mod = KC.load_module(SOURCE)
    finally:
        os.umask(old)
    assert mod.answer() == 42
    st = os.lstat(gen_dir)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()
    assert final_path(gen_dir).read_text() == SOURCE
    assert mod.__file__ == str(final_path(gen_dir))
    assert sorted(os.listdir(gen_dir)) == [final_path(gen_dir).name]  # no temp file left behind


def test_default_location_is_the_user_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv(KC.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert KC.default_dir() == str(tmp_path / "xdg" / "tpjax" / "triton")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert KC.default_dir() == str(tmp_path / "home" / ".cache" / "tpjax" / "triton")
    path = KC.cache_dir()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_group_or_world_writable_dir_is_refused(gen_dir, mode):
    gen_dir.mkdir()
    os.chmod(gen_dir, mode)
    with pytest.raises(KC.UnsafeCacheDirError, match="writable by group or others") as err:
        KC.load_module(SOURCE)
    msg = str(err.value)
    assert str(gen_dir) in msg and KC.ENV_VAR in msg and "Remove it" in msg
    assert os.listdir(gen_dir) == []  # nothing was written into it


def test_foreign_owned_dir_is_refused(gen_dir, monkeypatch):
    gen_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(gen_dir, 12345, -1)
    else:  # cannot give a directory away: pretend to be someone else
        me = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: me + 12345)
    with pytest.raises(KC.UnsafeCacheDirError, match="owned by uid") as err:
        KC.load_module(SOURCE)
    assert str(gen_dir) in str(err.value)
    assert os.listdir(gen_dir) == []


def test_symlink_as_cache_dir_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.setenv(KC.ENV_VAR, str(link))
    with pytest.raises(KC.UnsafeCacheDirError, match="symlink") as err:
        KC.load_module(SOURCE)
    assert str(link) in str(err.value)
    assert os.listdir(real) == []


def test_a_regular_file_as_cache_dir_is_refused(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv(KC.ENV_VAR, str(f))
    with pytest.raises(KC.UnsafeCacheDirError, match="not a directory"):
        KC.cache_dir()


def test_symlink_at_final_name_is_not_followed(gen_dir, tmp_path):
    gen_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim.py"
    victim.write_text("VICTIM = 1\n")
    final_path(gen_dir).symlink_to(victim)
    with pytest.warns(RuntimeWarning, match="symlink"):
        mod = KC.load_module(SOURCE)
    assert mod.answer() == 42
    assert victim.read_text() == "VICTIM = 1\n"  # the target was neither written nor executed
    assert not final_path(gen_dir).is_symlink() and final_path(gen_dir).read_text() == SOURCE


def test_symlink_at_temp_name_is_not_followed(gen_dir, tmp_path, monkeypatch):
    gen_dir.mkdir(mode=0o700)
    victim = tmp_path / "victim.py"
    victim.write_text("VICTIM = 1\n")
    planted = ".planted.tmp"
    (gen_dir / planted).symlink_to(victim)
    names = iter([planted, planted, ".fresh.tmp"])
    monkeypatch.setattr(KC, "_temp_name", lambda hexdigest: next(names))
    assert KC.load_module(SOURCE).answer() == 42
    assert victim.read_text() == "VICTIM = 1\n"
    assert (gen_dir / planted).is_symlink()  # left as it was: exclusive create refused it
    assert final_path(gen_dir).read_text() == SOURCE and not (gen_dir / ".fresh.tmp").exists()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s + "TAMPERED = True\n",  # appended code
        lambda s: s.replace("41 + 1", "41 + 2"),  # same length, different bytes
        lambda s: s[:-5],  # truncated
    ],
)
def test_tampered_cached_file_is_detected_and_regenerated(gen_dir, tamper):
    KC.load_module(SOURCE)
    final_path(gen_dir).write_text(tamper(SOURCE))
    with pytest.warns(RuntimeWarning, match="do not match its sha256"):
        mod = KC.load_module(SOURCE)
    assert mod.answer() == 42 and not hasattr(mod, "TAMPERED")
    assert final_path(gen_dir).read_text() == SOURCE


def test_group_writable_cached_file_is_replaced(gen_dir):
    KC.load_module(SOURCE)
    os.chmod(final_path(gen_dir), 0o666)
    with pytest.warns(RuntimeWarning, match="not a regular file private"):
        KC.load_module(SOURCE)
    assert stat.S_IMODE(os.lstat(final_path(gen_dir)).st_mode) == 0o600


def test_executes_and_shows_the_verified_bytes_even_if_the_file_changes_after_the_check(gen_dir, monkeypatch):
    real_store = KC.store

    def store_then_swap(source):
        path, data = real_store(source)
        with open(path, "w") as fh:  # a change after verification, before execution
            fh.write("def answer():\n    return -1\nEVIL = True\n")
        return path, data

    monkeypatch.setattr(KC, "store", store_then_swap)
    mod = KC.load_module(SOURCE)
    assert mod.answer() == 42 and not hasattr(mod, "EVIL")
    assert inspect.getsource(mod.answer) == SOURCE  # what Triton's JIT would read: the verified text


def test_keyboard_interrupt_mid_write_leaves_nothing_and_next_call_works(gen_dir, monkeypatch):
    real_write_all = KC._write_all

    def half_then_interrupt(fd, data):
        real_write_all(fd, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(KC, "_write_all", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        KC.load_module(SOURCE)
    assert os.listdir(gen_dir) == []  # neither the final file nor a half-written temp file
    monkeypatch.setattr(KC, "_write_all", real_write_all)
    assert KC.load_module(SOURCE).answer() == 42
    assert final_path(gen_dir).read_text() == SOURCE


# ---- the codegen/triton.py loading path (triton imports and compiles for sm_90 on CPU) ----------------------
def test_generated_kernel_loads_through_the_cache_and_jits(gen_dir, tmp_path, monkeypatch):
    triton = pytest.importorskip("triton")
    import jax.numpy as jnp
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    import tpjax
    from tpjax.codegen import triton as TG

    # importing jax_triton sets TRITON_CACHE_DIR="", which breaks triton.compile (see tpjax._compat).
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton-cache"))
    monkeypatch.setattr(TG, "_MODULES", {})
    z = jnp.zeros((), jnp.float32)
    comp = tpjax.compile(lambda q, p: 0.5 * p**2 + 0.5 * q**2, (z, z), method="leapfrog")
    src = TG.generate(comp)
    gen_dir.mkdir(mode=0o700)
    final_path(gen_dir, src).write_text(src.replace("n_steps", "n_steps_evil", 1))  # a tampered cached copy
    with pytest.warns(RuntimeWarning, match="do not match its sha256"):
        kern = TG.kernel(comp)
    assert final_path(gen_dir, src).read_text() == src
    assert inspect.getsourcefile(kern.fn) == str(final_path(gen_dir, src))
    assert kern.src in src  # Triton parsed the verified text
    constexprs = {"BLOCK": 128, "FAST_MATH": False}
    sig = {a: "*fp32" if a.endswith("_ptr") else "constexpr" if a in constexprs else "i32" for a in kern.arg_names}
    ast = ASTSource(fn=kern, signature=sig, constexprs=constexprs)
    ptx = triton.compile(ast, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]
    assert ".entry" in ptx
    assert TG.kernel(comp) is kern  # in-process cache: no second disk round-trip
