// communicator.cpp
#include "mpi/communicator.h"

#include "mpi/communicator_impl.h"
#include "mpi/mpi_check.h"

namespace rw::mpi {
namespace {

std::unique_ptr<CommunicatorImpl> adopt(MPI_Comm comm) {
  auto impl = std::make_unique<CommunicatorImpl>();
  impl->comm = comm;
  RW_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  RW_MPI_CHECK(MPI_Comm_rank(comm, &impl->rank));
  RW_MPI_CHECK(MPI_Comm_size(comm, &impl->size));
  return impl;
}

}  // namespace

Communicator::Communicator(std::unique_ptr<CommunicatorImpl> impl) : impl_(std::move(impl)) {}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;

Communicator::~Communicator() {
  if (!impl_ || impl_->comm == MPI_COMM_NULL) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&impl_->comm);
}

Communicator Communicator::world() {
  MPI_Comm c;
  RW_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &c));
  return Communicator(adopt(c));
}

Communicator Communicator::self() {
  MPI_Comm c;
  RW_MPI_CHECK(MPI_Comm_dup(MPI_COMM_SELF, &c));
  return Communicator(adopt(c));
}

Communicator Communicator::split(int color, int key) const {
  MPI_Comm c;
  RW_MPI_CHECK(MPI_Comm_split(impl_->comm, color, key, &c));
  return Communicator(adopt(c));
}

int Communicator::rank() const { return impl_->rank; }
int Communicator::size() const { return impl_->size; }

}  // namespace rw::mpi
