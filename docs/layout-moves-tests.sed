# Rewrites a test module written before tests/support/ (issue 14, s14c): sed -i -E -f docs/layout-moves-tests.sed FILE...
s/\btests\.helpers\b/tests.support.orders_flow/g
s#\btests/helpers\.py\b#tests/support/orders_flow.py#g
s/\btests\.fake_server\b/tests.support.wsgi_server/g
s#\btests/fake_server\.py\b#tests/support/wsgi_server.py#g
s/\btests\.servers\b/tests.support.process_servers/g
s#\btests/servers\.py\b#tests/support/process_servers.py#g
s/\btests\.sink_server\b/tests.support.sink_receiver/g
s#\btests/sink_server\.py\b#tests/support/sink_receiver.py#g
s/\btests\.segment_server\b/tests.support.segment_receiver/g
s#\btests/segment_server\.py\b#tests/support/segment_receiver.py#g
s/\btests\.stripe_fake\b/tests.support.stripe_fake/g
s#\btests/stripe_fake\.py\b#tests/support/stripe_fake.py#g
s/\btests\.google_fake\b/tests.support.google_fake/g
s#\btests/google_fake\.py\b#tests/support/google_fake.py#g
s/\btests\.apple_ca\b/tests.support.apple_ca/g
s#\btests/apple_ca\.py\b#tests/support/apple_ca.py#g
s/\btests\.app_store_api_support\b/tests.support.app_store_api/g
s#\btests/app_store_api_support\.py\b#tests/support/app_store_api.py#g
s/\btests\.app_store_support\b/tests.support.app_store/g
s#\btests/app_store_support\.py\b#tests/support/app_store.py#g
s/\btests\.google_support\b/tests.support.google_play/g
s#\btests/google_support\.py\b#tests/support/google_play.py#g
s/\btests\.google_tokens\b/tests.support.google_push_tokens/g
s#\btests/google_tokens\.py\b#tests/support/google_push_tokens.py#g
s/\btests\.stripe_support\b/tests.support.stripe_events/g
s#\btests/stripe_support\.py\b#tests/support/stripe_events.py#g
s/\btests\.stripe_invoice_support\b/tests.support.stripe_invoices/g
s#\btests/stripe_invoice_support\.py\b#tests/support/stripe_invoices.py#g
s/\btests\.container_files\b/tests.support.container_files/g
s#\btests/container_files\.py\b#tests/support/container_files.py#g
s/\btests\.import_support\b/tests.support.import_files/g
s#\btests/import_support\.py\b#tests/support/import_files.py#g
s/\btests\.ops_support\b/tests.support.ops_ledger/g
s#\btests/ops_support\.py\b#tests/support/ops_ledger.py#g
s/\btests\.price_support\b/tests.support.price_catalogs/g
s#\btests/price_support\.py\b#tests/support/price_catalogs.py#g
s/\btests\.test_accelbyte_support\b/tests.support.accelbyte/g
s#\btests/test_accelbyte_support\.py\b#tests/support/accelbyte.py#g
s/^from tests import apple_ca as ca/from tests.support import apple_ca as ca/
s/^from tests import stripe_support as stripe/from tests.support import stripe_events as stripe/
s/from tests import apple_ca$/from tests.support import apple_ca/
s/from tests import google_support, google_tokens/from tests.support import google_play as google_support, google_push_tokens as google_tokens/
s/^from tests\.test_kraty_webhook import/from tests.support.kraty_webhooks import/
s/^from tests\.test_sink_delivery import (CRM_SECRET|server)\b/from tests.support.sink_receiver import \1/
