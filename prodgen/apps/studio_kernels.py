"""The kernel manager of ``prodgen studio``'s Voilà server: a cap on kernels, on top of Voilà's idle culling.

Voilà starts one kernel (about 270 MB: torch and the models) for every page load and, on its own, never stops
it. ``studio_server.voila_command`` therefore turns on jupyter_server's culler (kernels idle and without an open
page are shut down) and names this class, which caps the kernels alive at once: when a new page would pass
``max_kernels``, the least recently active kernel whose page is gone (no connection, not busy) is shut down
first (a reload frees its old kernel at once); if every kernel still has its page open, the new page gets
HTTP 503 with a one-line reason instead of another kernel. Imported only inside the Voilà process (it needs
jupyter_server, part of the ``studio`` extra). Used by ``prodgen studio`` and tests/test_hostile_files.py.
"""
from __future__ import annotations

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer

__all__ = ["CappedKernelManager"]


class CappedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` with at most ``max_kernels`` kernels (``--CappedKernelManager.max_kernels``)."""

    max_kernels = Integer(4, config=True, help="Most kernels (open studio pages) alive at once; 0: no cap.")

    async def start_kernel(self, *args, **kwargs):
        if self.max_kernels > 0 and kwargs.get("kernel_id") not in self:
            if len(self.list_kernel_ids()) >= self.max_kernels:
                await self._free_one()
            if len(self.list_kernel_ids()) >= self.max_kernels:
                raise web.HTTPError(503, f"the studio already runs {self.max_kernels} kernels, one per open page; "
                                         "close a studio tab (or wait for idle ones to be stopped) and reload")
        return await super().start_kernel(*args, **kwargs)

    async def _free_one(self) -> bool:
        """Shut down the least recently active kernel that has no open page and is not busy; whether one was."""
        idle = [k for k in self.list_kernel_ids() if not self._kernel_connections.get(k, 0)
                and getattr(self._kernels[k], "execution_state", "idle") != "busy"]
        if not idle:
            return False
        oldest = min(idle, key=lambda k: getattr(self._kernels[k], "last_activity", None) or 0)
        self.log.info("studio: %d kernels, shutting down %s (its page is closed)", len(self.list_kernel_ids()), oldest)
        await self.shutdown_kernel(oldest)
        return True
