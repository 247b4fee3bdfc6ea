//! The Response family, B→C: the answer to a command with `response_required`, carrying
//! its commandId as `correlation_id`. Layout notation: [`super`].

use super::super::error::OpenWireError;
use super::super::primitives::{Reader, Throwable, Writer};
use super::{DataStructure, Header};

type Result<T> = std::result::Result<T, OpenWireError>;

/// Response (30), B→C: success of the command whose commandId is `correlation_id`.
///
/// H · i32 correlationId
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub header: Header,
    pub correlation_id: i32,
}

impl Response {
    pub fn new(correlation_id: i32) -> Response {
        Response {
            header: Header::default(),
            correlation_id,
        }
    }

    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(Response {
            header: Header::read(r)?,
            correlation_id: r.i32()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.i32(self.correlation_id);
        Ok(())
    }
}

/// ExceptionResponse (31), B→C: failure of the command `correlation_id`; the client
/// throws the exception from the blocked call.
///
/// H · i32 correlationId · T exception
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExceptionResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub exception: Option<Throwable>,
}

impl ExceptionResponse {
    pub fn new(correlation_id: i32, exception: Throwable) -> ExceptionResponse {
        ExceptionResponse {
            header: Header::default(),
            correlation_id,
            exception: Some(exception),
        }
    }

    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(ExceptionResponse {
            header: Header::read(r)?,
            correlation_id: r.i32()?,
            exception: r.throwable()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.i32(self.correlation_id);
        w.throwable(self.exception.as_ref())
    }
}

/// DataResponse (32), B→C (not needed by JMS 1.1 flows).
///
/// H · i32 correlationId · N(any) data
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub data: Option<Box<DataStructure>>,
}

impl DataResponse {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(DataResponse {
            header: Header::read(r)?,
            correlation_id: r.i32()?,
            data: r.nested::<DataStructure>()?.map(Box::new),
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.i32(self.correlation_id);
        w.nested(self.data.as_deref())
    }
}

/// DataArrayResponse (33), B→C: the XA RECOVER reply (XA transaction ids).
///
/// H · i32 correlationId · A(any) data
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataArrayResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub data: Option<Vec<DataStructure>>,
}

impl DataArrayResponse {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(DataArrayResponse {
            header: Header::read(r)?,
            correlation_id: r.i32()?,
            data: r.array()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.i32(self.correlation_id);
        w.array(self.data.as_deref())
    }
}

/// IntegerResponse (34), B→C: the XA PREPARE reply.
///
/// H · i32 correlationId · i32 result
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntegerResponse {
    pub header: Header,
    pub correlation_id: i32,
    pub result: i32,
}

impl IntegerResponse {
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        Ok(IntegerResponse {
            header: Header::read(r)?,
            correlation_id: r.i32()?,
            result: r.i32()?,
        })
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<()> {
        self.header.write(w);
        w.i32(self.correlation_id);
        w.i32(self.result);
        Ok(())
    }
}
