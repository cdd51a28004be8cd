// communicator.h: an owned MPI communicator, opaque to code outside mpi/ (the header does not
// include <mpi.h>). The definition lives in communicator_impl.h for mpi/ and io/.
#pragma once
#include <memory>

namespace rw::mpi {

struct CommunicatorImpl;

class Communicator {
 public:
  static Communicator world();      // a duplicate of MPI_COMM_WORLD
  static Communicator self();       // a duplicate of MPI_COMM_SELF: this process alone
  // Collective over this communicator: ranks with the same color form a new communicator,
  // ordered by key.
  Communicator split(int color, int key) const;
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  ~Communicator();
  int rank() const;
  int size() const;
  const CommunicatorImpl& impl() const { return *impl_; }

 private:
  explicit Communicator(std::unique_ptr<CommunicatorImpl> impl);
  std::unique_ptr<CommunicatorImpl> impl_;
};

}  // namespace rw::mpi
