"""Rendering target lists into the outbox: templates compiled once in a hardened sandbox, rendered
per customer, grouped into delivery batches; lint and previews use the same path.

Guarantees: a template cannot run code or reach Python objects, and no render can run long; a
message that fails a rule for one customer goes to `render_errors`, not to the outbox; a campaign
over its failure limit is held; a message's text is fixed once a request for it may have left.
"""

from campaign_orchestrator.render.compiled import CompiledTemplate, RenderError, RenderPolicy, render_policy
from campaign_orchestrator.render.render import RenderReport, render_outbox

__all__ = ["CompiledTemplate", "RenderError", "RenderPolicy", "RenderReport", "render_outbox", "render_policy"]
