"""The one header of a generated CT slice (pydicom), shared by the DICOM format tests and the IDC fake release."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_slice(study_uid: str, series_uid: str, frame_uid: str, *, number: int, description: str, patient_id: str,
             patient_name: str, study_date: str) -> Dataset:
    """A CT Image Storage dataset with its file meta and the type 1/2 patient and study attributes filled.

    The caller sets geometry, pixel module and pixel data.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "CT", number, description
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient_name, patient_id, "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = study_date, "120000", "1", ""
    ds.ReferringPhysicianName, ds.Manufacturer = "", "omnimedseg tests"
    return ds
