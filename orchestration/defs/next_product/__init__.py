import dagster as dg

from orchestration.defs.next_product.assets import next_product_model, next_product_offers

defs = dg.Definitions(assets=[next_product_model, next_product_offers])
