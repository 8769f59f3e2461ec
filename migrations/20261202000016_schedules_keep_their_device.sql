-- A device that a schedule names cannot be deleted.
--
-- The reference was ON DELETE SET NULL: deleting a device left its schedules
-- enabled with no device, so each firing made a job that failed with "the
-- job has no device", and the schedule could not be saved again as it was
-- (the api requires a device for those kinds). Now the delete is refused
-- while a schedule names the device (the api answers 409 naming how many);
-- delete the schedules or point them at another device first. NO ACTION,
-- not RESTRICT: the check runs at the end of the statement, so deleting a
-- tenant, which cascades to both its devices and its schedules, still works.
-- Jobs keep ON DELETE SET NULL: they are history, not plans.
ALTER TABLE schedules
    DROP CONSTRAINT schedules_device_fkey,
    ADD CONSTRAINT schedules_device_fkey FOREIGN KEY (tenant_id, device_id)
        REFERENCES devices (tenant_id, id);

-- The reference is checked on every device delete.
CREATE INDEX schedules_device_idx ON schedules (tenant_id, device_id) WHERE device_id IS NOT NULL;
