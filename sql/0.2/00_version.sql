-- aura 0.2 upgrade parts are concatenated in file-name order by make.
-- Conventions for every part (see ../shared/DESIGN.md section 4):
--   * tenant tables call aura._register_tenant_table(...) (RLS + pg_dump, 06_tenancy.sql);
--   * SECURITY DEFINER functions pin search_path and check the tenant themselves;
--   * each module registers its deployment_check items in aura.deployment_items;
--   * privileges are granted explicitly; 99_privileges.sql strips PUBLIC.
COMMENT ON SCHEMA aura IS 'aura: restaurant settings, feature flags, loyalty and insights';
