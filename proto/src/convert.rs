//! Conversions between rudder's domain types and the wire messages, and the one mapping of a
//! [`ServiceError`] to a gRPC status. Messages are destructured completely, so a field added to the
//! .proto breaks the build here instead of being silently ignored.

use rudder_core::{Citation, GroundingMode, Passage, ServiceError, access::Principal, store::SearchMode};
use tonic::{Code, Status};

use crate::v1;

/// A `google.protobuf.Timestamp` from an RFC 3339 UTC string as rudder stores them; None if empty or
/// malformed.
pub fn timestamp(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let seconds = rudder_core::time::parse_rfc3339(rfc3339)?;
    Some(prost_types::Timestamp { seconds: i64::try_from(seconds).ok()?, nanos: 0 })
}

/// The search a wire `RetrievalMode` asks for (UNSPECIFIED: hybrid); None for an unknown value.
pub fn search_mode(mode: i32) -> Option<SearchMode> {
    match v1::RetrievalMode::try_from(mode).ok()? {
        v1::RetrievalMode::Unspecified | v1::RetrievalMode::Hybrid => Some(SearchMode::Hybrid),
        v1::RetrievalMode::Dense => Some(SearchMode::Dense),
        v1::RetrievalMode::Sparse => Some(SearchMode::Sparse),
    }
}

/// The wire `RetrievalMode` of a search.
pub fn retrieval_mode(mode: SearchMode) -> v1::RetrievalMode {
    match mode {
        SearchMode::Hybrid => v1::RetrievalMode::Hybrid,
        SearchMode::Dense => v1::RetrievalMode::Dense,
        SearchMode::Sparse => v1::RetrievalMode::Sparse,
    }
}

/// The wire value of a grounding mode.
pub fn grounding_mode(mode: GroundingMode) -> v1::GroundingMode {
    match mode {
        GroundingMode::Off => v1::GroundingMode::Off,
        GroundingMode::Evidence => v1::GroundingMode::EvidenceOnly,
        GroundingMode::Verified => v1::GroundingMode::Verified,
        GroundingMode::Full => v1::GroundingMode::Full,
        GroundingMode::Extractive => v1::GroundingMode::Extractive,
    }
}

/// The caller of `request`, as the server's authentication layer found it; the local principal
/// (everything allowed) when no layer ran: authentication off, or a handler called in process.
pub fn principal<T>(request: &tonic::Request<T>) -> Principal {
    request.extensions().get::<Principal>().cloned().unwrap_or_else(Principal::local)
}

/// The gRPC status a service error answers with.
pub fn status(err: ServiceError) -> Status {
    let code = match &err {
        ServiceError::InvalidArgument { .. } => Code::InvalidArgument,
        ServiceError::NotFound { .. } => Code::NotFound,
        ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
        ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
        ServiceError::Unavailable(_) => Code::Unavailable,
        ServiceError::PermissionDenied(_) => Code::PermissionDenied,
        ServiceError::Unauthenticated(_) => Code::Unauthenticated,
        ServiceError::Cancelled(_) => Code::Cancelled,
        ServiceError::Internal(_) => Code::Internal,
    };
    Status::new(code, err.to_string())
}

impl From<&Passage> for v1::Passage {
    fn from(p: &Passage) -> Self {
        let Passage {
            doc_id,
            version,
            title,
            heading_path,
            text,
            source,
            regions,
            brand,
            char_start,
            char_end,
            chunk_index,
            score,
            found_by_dense,
            found_by_sparse,
        } = p;
        let mut found_by = Vec::new();
        if *found_by_dense {
            found_by.push(v1::RetrievalLeg::Dense as i32);
        }
        if *found_by_sparse {
            found_by.push(v1::RetrievalLeg::Sparse as i32);
        }
        Self {
            document: Some(v1::DocumentRef { doc_id: doc_id.clone(), version: version.clone() }),
            title: title.clone(),
            heading_path: heading_path.clone(),
            text: text.clone(),
            char_start: u32::try_from(*char_start).unwrap_or(u32::MAX),
            char_end: u32::try_from(*char_end).unwrap_or(u32::MAX),
            chunk_index: *chunk_index,
            regions: regions.clone(),
            brand: brand.clone().unwrap_or_default(),
            score: *score,
            found_by,
            source: source.clone(),
        }
    }
}

impl From<v1::Passage> for Passage {
    fn from(p: v1::Passage) -> Self {
        let v1::Passage {
            document,
            title,
            heading_path,
            text,
            char_start,
            char_end,
            chunk_index,
            regions,
            brand,
            score,
            found_by,
            source,
        } = p;
        let document = document.unwrap_or_default();
        let v1::DocumentRef { doc_id, version } = document;
        Self {
            doc_id,
            version,
            title,
            heading_path,
            text,
            source,
            regions,
            brand: (!brand.is_empty()).then_some(brand),
            char_start: char_start.into(),
            char_end: char_end.into(),
            chunk_index,
            score,
            found_by_dense: found_by.contains(&(v1::RetrievalLeg::Dense as i32)),
            found_by_sparse: found_by.contains(&(v1::RetrievalLeg::Sparse as i32)),
        }
    }
}

impl From<&Citation> for v1::Citation {
    fn from(c: &Citation) -> Self {
        let Citation { marker, doc_id, version, title, section, chunk_index } = c;
        Self {
            marker: *marker,
            document: Some(v1::DocumentRef { doc_id: doc_id.clone(), version: version.clone() }),
            title: title.clone(),
            section: section.clone(),
            chunk_index: *chunk_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passage_survives_the_round_trip_through_the_wire() {
        let passage = Passage {
            doc_id: "returns-uk".into(),
            version: "2026-03".into(),
            title: "Returns (UK)".into(),
            heading_path: vec!["Returns".into(), "Refund timing".into()],
            text: "Refunds within 14 days.".into(),
            source: "returns-uk.md".into(),
            regions: vec!["uk".into()],
            brand: Some("northwind".into()),
            char_start: 10,
            char_end: 33,
            chunk_index: 2,
            score: 0.5,
            found_by_dense: true,
            found_by_sparse: false,
        };
        assert_eq!(Passage::from(v1::Passage::from(&passage)), passage);
    }

    #[test]
    fn every_error_kind_maps_to_its_status_code() {
        assert_eq!(status(ServiceError::invalid("question", "empty")).code(), Code::InvalidArgument);
        let not_found =
            status(ServiceError::NotFound { what: "region", name: "fr".into(), known: vec!["uk".into()] });
        assert_eq!(not_found.code(), Code::NotFound);
        assert!(not_found.message().contains("uk"));
        assert_eq!(status(ServiceError::ResourceExhausted("full".into())).code(), Code::ResourceExhausted);
    }
}
