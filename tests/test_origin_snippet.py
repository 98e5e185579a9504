"""The snippet from the project's origin document (shared/DESIGN.md) must run verbatim from the repo root."""

import subprocess
import sys
import textwrap

SNIPPET = textwrap.dedent(
    """
    import paddle
    from passl.modeling.backbones import build_backbone
    from passl.modeling.heads import build_head
    from passl.utils.config import get_config

    class Model(paddle.nn.Layer):
        def __init__(self, cfg_file):
            super().__init__()
            cfg = get_config(cfg_file)
            self.backbone = build_backbone(cfg.model.architecture)
            self.head = build_head(cfg.model.head)
        def forward(self, x):
            return self.head(self.backbone(x))

    m = Model("configs/convnext/convnext_tiny.yaml")
    out = m(paddle.randn([2, 3, 224, 224]))
    out.sum().backward()
    """
)


def test_origin_snippet_runs_verbatim(repo_root):
    # Fed on stdin, as a user pasting it into `python` at the repo root would.
    code = SNIPPET + "\nprint('origin snippet: ok', list(out.shape))\n"
    res = subprocess.run([sys.executable, "-"], input=code, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "origin snippet: ok [2, 1000]" in res.stdout
