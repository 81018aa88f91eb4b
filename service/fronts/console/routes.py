"""The /console pages: server-rendered HTML over the same reads as /v1, no build step.

Endpoints authorize through the /v1 authorizer and console sessions (see ``access`` and
``frame``), read through the same queries and document functions as /v1 (so a page and the
API show the same figures), and render Jinja templates with autoescaping on.
"""

from __future__ import annotations

from starlette.routing import Route

from service.fronts.auth import Scope
from service.fronts.console.accounting_pages import AccountingPages
from service.fronts.console.collection_pages import CollectionPages
from service.fronts.console.csv_pages import CsvPages
from service.fronts.console.delivery_pages import DeliveryPages
from service.fronts.console.report_pages import ReportPages
from service.fronts.console.statement_pages import StatementPages


class Console(
    AccountingPages, CollectionPages, CsvPages, DeliveryPages, ReportPages, StatementPages
):
    """The /console pages, each authorized through the frame. The finance pages (per_merchant)
    read through the caller's organizations, and a token limited to merchants may open them;
    the rest (deliveries, exports, ingestion) span merchants and need a token that does not."""

    def routes(self) -> list[Route]:
        return [
            Route("/console", self._page(self.overview, per_merchant=True), methods=["GET"]),
            Route("/console/operations", self._page(self.operations), methods=["GET"]),
            Route(
                "/console/reports/outstanding.csv",
                self._page(self.headline_csv, per_merchant=True),
                methods=["GET"],
            ),
            Route(
                "/console/reports/aging.csv",
                self._page(self.aging_csv, per_merchant=True),
                methods=["GET"],
            ),
            Route(
                "/console/reports/collections.csv",
                self._page(self.collections_csv, per_merchant=True),
                methods=["GET"],
            ),
            Route("/console/deliveries.csv", self._page(self.deliveries_csv), methods=["GET"]),
            Route(
                "/console/invoices.csv",
                self._page(self.invoices_csv, per_merchant=True),
                methods=["GET"],
            ),
            Route("/console/deliveries", self._page(self.deliveries), methods=["GET"]),
            Route(
                "/console/deliveries/replay",
                self._bounded(self._page(self.replay_selected, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/deliveries/{deliveryId:int}",
                self._page(self.delivery),
                methods=["GET"],
            ),
            Route(
                "/console/deliveries/{deliveryId:int}/replay",
                self._bounded(self._page(self.replay, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/deliveries/{deliveryId:int}/corrections",
                self._bounded(self._page(self.correct, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/deliveries/{deliveryId:int}/resolution",
                self._bounded(self._page(self.resolve, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/invoices", self._page(self.invoices, per_merchant=True), methods=["GET"]
            ),
            Route(
                "/console/invoices/reconcile",
                self._bounded(self._page(self.reconcile, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/collections",
                self._page(self.collected, per_merchant=True),
                methods=["GET"],
            ),
            Route(
                "/console/collections.csv",
                self._page(self.collected_csv, per_merchant=True),
                methods=["GET"],
            ),
            Route("/console/exports", self._page(self.accounting_exports), methods=["GET"]),
            Route(
                "/console/exports",
                self._bounded(self._page(self.create_accounting_export, Scope.OPERATOR)),
                methods=["POST"],
            ),
            Route(
                "/console/exports/{exportId:int}/download",
                self._page(self.download_accounting_export),
                methods=["GET"],
            ),
            Route(
                "/console/statements",
                self._page(self.statement, per_merchant=True),
                methods=["GET"],
            ),
            Route(
                "/console/statements.csv",
                self._page(self.statement_csv, per_merchant=True),
                methods=["GET"],
            ),
            Route("/console/login", self._bounded(self.login), methods=["GET", "POST"]),
            Route("/console/logout", self._bounded(self.logout), methods=["POST"]),
            Route("/console/console.css", self.stylesheet, methods=["GET"]),
        ]
