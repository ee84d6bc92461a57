#!/usr/bin/env python3
"""Build and check a resources-and-assets APK of the app without Gradle or the Android SDK.

What the full build (Gradle + AGP) does for resources, done with the Android build tools that a
Linux distribution ships (Debian: aapt, zipalign, apksigner, android-framework-res):

1. merge the manifest as AGP would for this app: add the package (from ``namespace`` in
   app/build.gradle.kts), drop elements marked ``tools:node="remove"`` and all ``tools:``
   attributes; minSdk/targetSdk/version come from app/build.gradle.kts;
2. ``aapt2 compile`` every resource (validates the resource XML);
3. ``aapt2 link`` against framework-res.apk with the manifest and ``app/src/main/assets``
   (the bundled model stays uncompressed, as ``noCompress += "tflite"`` asks), plus R.java;
4. ``zipalign`` (4-byte alignment, so the model can be memory-mapped) and ``zipalign -c``;
5. ``apksigner sign`` with a throwaway key made by ``keytool``, then ``apksigner verify``;
6. ``aapt2 dump badging``.

The APK has no code (no android.jar, d8 or Kotlin Android compiler here): it proves the manifest,
resources and assets are well-formed and packaged as the app expects.

    python3 android_demo/tools/resources_apk.py --out build/resources-apk

Needs Python 3.9+ and the tools on PATH; exits non-zero with the failing tool's message.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ANDROID_NS = "http://schemas.android.com/apk/res/android"
TOOLS_NS = "http://schemas.android.com/tools"
FRAMEWORK_RES = "/usr/share/android-framework-res/framework-res.apk"
HERE = Path(__file__).resolve().parent


class BuildError(Exception):
    pass


def _run(cmd: list[str], what: str) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise BuildError(f"{what}: {cmd[0]} not found (see .ci/android-deps.sh)") from None
    if r.returncode != 0:
        raise BuildError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout).strip()}")
    return r.stdout + r.stderr


def gradle_config(app_dir: Path) -> dict:
    """namespace, minSdk, targetSdk, versionCode and versionName from app/build.gradle.kts."""
    text = (app_dir / "build.gradle.kts").read_text(encoding="utf-8")

    def find(pattern: str, what: str) -> str:
        m = re.search(pattern, text)
        if not m:
            raise BuildError(f"{what} not found in {app_dir / 'build.gradle.kts'}")
        return m.group(1)

    return {
        "namespace": find(r'namespace\s*=\s*"([\w.]+)"', "namespace"),
        "min_sdk": find(r"\bminSdk\s*=\s*(\d+)", "minSdk"),
        "target_sdk": find(r"\btargetSdk\s*=\s*(\d+)", "targetSdk"),
        "version_code": find(r"\bversionCode\s*=\s*(\d+)", "versionCode"),
        "version_name": find(r'\bversionName\s*=\s*"([^"]+)"', "versionName"),
    }


def merge_manifest(src: Path, package: str, dst: Path) -> None:
    """The manifest as AGP's merger leaves it for this app (package added, tools: markup applied)."""
    ET.register_namespace("android", ANDROID_NS)
    try:
        tree = ET.parse(src)
    except ET.ParseError as e:
        raise BuildError(f"{src}: not well-formed XML ({e})") from None
    root = tree.getroot()
    if root.tag != "manifest":
        raise BuildError(f"{src}: root element is <{root.tag}>, expected <manifest>")
    root.set("package", package)
    node_attr = f"{{{TOOLS_NS}}}node"

    def prune(parent: ET.Element) -> None:
        for child in list(parent):
            action = child.get(node_attr)
            if action in ("remove", "removeAll"):
                parent.remove(child)
                continue
            if action not in (None, "merge", "replace", "strict", "merge-only-attributes"):
                raise BuildError(f"{src}: unsupported tools:node=\"{action}\"")
            prune(child)
        for el in [parent, *parent]:
            for k in [k for k in el.attrib if k.startswith(f"{{{TOOLS_NS}}}")]:
                del el.attrib[k]

    prune(root)
    for k in [k for k in root.attrib if k.startswith(f"{{{TOOLS_NS}}}")]:
        del root.attrib[k]
    tree.write(dst, encoding="utf-8", xml_declaration=True)


def build(android_dir: Path, out: Path, framework_res: str = FRAMEWORK_RES) -> dict:
    """Builds, aligns, signs and verifies the APK; returns paths and the tools' reports."""
    app = android_dir / "app"
    main = app / "src" / "main"
    if not (main / "AndroidManifest.xml").is_file():
        raise BuildError(f"{android_dir}: no app/src/main/AndroidManifest.xml")
    if not Path(framework_res).is_file():
        raise BuildError(f"{framework_res} not found (Debian package android-framework-res)")
    cfg = gradle_config(app)
    if out.exists():
        shutil.rmtree(out)
    (out / "gen").mkdir(parents=True)

    manifest = out / "AndroidManifest.xml"
    merge_manifest(main / "AndroidManifest.xml", cfg["namespace"], manifest)

    compiled = out / "compiled-res.zip"
    _run(["aapt2", "compile", "--dir", str(main / "res"), "-o", str(compiled)], "aapt2 compile")

    unaligned = out / "unaligned.apk"
    link = ["aapt2", "link", "-o", str(unaligned), "-I", framework_res, "--manifest", str(manifest),
            "--min-sdk-version", cfg["min_sdk"], "--target-sdk-version", cfg["target_sdk"],
            "--version-code", cfg["version_code"], "--version-name", cfg["version_name"],
            "--java", str(out / "gen"), "-0", ".tflite"]
    assets = main / "assets"
    if assets.is_dir():
        link += ["-A", str(assets)]
    link.append(str(compiled))
    _run(link, "aapt2 link")

    aligned = out / "aligned.apk"
    _run(["zipalign", "-p", "-f", "4", str(unaligned), str(aligned)], "zipalign")
    _run(["zipalign", "-c", "4", str(aligned)], "zipalign -c")

    keystore = out / "throwaway-key.p12"
    password = secrets.token_hex(16)
    _run(["keytool", "-genkeypair", "-keystore", str(keystore), "-storetype", "PKCS12",
          "-storepass", password, "-keypass", password, "-alias", "throwaway", "-keyalg", "RSA",
          "-keysize", "2048", "-validity", "1", "-dname", "CN=edgecnn throwaway test key"], "keytool")
    signed = out / "app-resources.apk"
    _run(["apksigner", "sign", "--ks", str(keystore), "--ks-pass", f"pass:{password}",
          "--ks-key-alias", "throwaway", "--out", str(signed), str(aligned)], "apksigner sign")
    verify = _run(["apksigner", "verify", "--verbose", "--print-certs", str(signed)], "apksigner verify")
    badging = _run(["aapt2", "dump", "badging", str(signed)], "aapt2 dump badging")
    xmltree = _run(["aapt2", "dump", "xmltree", "--file", "AndroidManifest.xml", str(signed)],
                   "aapt2 dump xmltree")
    for p in (unaligned, aligned, keystore):
        p.unlink(missing_ok=True)
    r_java = next((out / "gen").rglob("R.java"), None)
    return {"apk": signed, "manifest": manifest, "r_java": r_java, "config": cfg,
            "verify": verify, "badging": badging, "manifest_xmltree": xmltree}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--android", type=Path, default=HERE.parent, help="the Android project (default: android_demo)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    ap.add_argument("--framework-res", default=FRAMEWORK_RES)
    a = ap.parse_args(argv)
    try:
        r = build(a.android, a.out, a.framework_res)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"signed and verified: {r['apk']}")
    print(r["badging"].strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
